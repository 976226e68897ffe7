//! Mocked AWS answers for unit tests of what the local emulator cannot
//! show: a proxy that stays `creating`, an UNAVAILABLE target, conflicts,
//! a group still in use, a proxy that is not found.

use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client};

use super::contract::Ctx;
use crate::aws::Aws;
use crate::ui::progress::{Progress, StepBar};

macro_rules! mocked_client {
    ($name:ident, $krate:ident) => {
        pub fn $name(rules: &[&Rule]) -> $krate::Client {
            let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
            for rule in rules {
                interceptor = interceptor.with_rule(rule);
            }
            $krate::Client::from_conf(
                $krate::Config::builder()
                    .behavior_version_latest()
                    .region($krate::config::Region::new("us-east-1"))
                    .credentials_provider($krate::config::Credentials::new(
                        "test", "test", None, None, "test",
                    ))
                    .http_client(create_mock_http_client())
                    .interceptor(interceptor)
                    .build(),
            )
        }
    };
}

mocked_client!(iam, aws_sdk_iam);
mocked_client!(ec2, aws_sdk_ec2);
mocked_client!(rds, aws_sdk_rds);
mocked_client!(lambda, aws_sdk_lambda);

/// The runbook name the mocked resources are tagged with.
pub const RUNBOOK: &str = "rb";

/// An `Aws` whose clients answer from the given rules (other calls fail).
pub struct Mocked {
    pub aws: Aws,
    bar: StepBar,
}

impl Mocked {
    pub fn new(rds_rules: &[&Rule], ec2_rules: &[&Rule], lambda_rules: &[&Rule]) -> Mocked {
        Mocked {
            aws: Aws::from_clients(
                iam(&[]),
                ec2(ec2_rules),
                rds(rds_rules),
                lambda(lambda_rules),
            ),
            bar: Progress::new(true).step("test"),
        }
    }

    pub fn cx(&self) -> Ctx<'_> {
        Ctx::new(&self.aws, RUNBOOK, &self.bar, None)
    }
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}
