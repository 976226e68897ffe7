//! The account changed by hand during a test (a function's variable, the
//! pool), and watches that record what a function's variable held while a
//! command ran.

use super::*;

/// Sets (or, with None, removes) one variable of a Lambda function, keeping
/// the others, as a person would in the console.
pub fn set_function_variable(emu: &Emulator, function: &str, variable: &str, value: Option<&str>) {
    let config = emu.sdk_config();
    runtime().block_on(async {
        let lambda = aws_sdk_lambda::Client::new(&config);
        let conf = lambda
            .get_function_configuration()
            .function_name(function)
            .send()
            .await
            .unwrap();
        let mut vars = conf
            .environment()
            .and_then(|e| e.variables())
            .cloned()
            .unwrap_or_default();
        match value {
            Some(v) => vars.insert(variable.to_string(), v.to_string()),
            None => vars.remove(variable),
        };
        // As AWS does, the emulator refuses an update while another is in
        // progress: retry that, then wait until this one is done.
        let started = Instant::now();
        loop {
            let sent = lambda
                .update_function_configuration()
                .function_name(function)
                .environment(
                    aws_sdk_lambda::types::Environment::builder()
                        .set_variables(Some(vars.clone()))
                        .build(),
                )
                .send()
                .await;
            match sent {
                Ok(_) => break,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_conflict_exception())
                        && started.elapsed() < Duration::from_secs(30) =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("update {function}: {e:?}"),
            }
        }
        while lambda
            .get_function_configuration()
            .function_name(function)
            .send()
            .await
            .unwrap()
            .last_update_status()
            == Some(&aws_sdk_lambda::types::LastUpdateStatus::InProgress)
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{function} stays InProgress"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// Watches functions' variables while a command runs: every value each
/// one takes must be a host that works, the DB's own (`db_host`) or the
/// endpoint of a proxy that exists and is not being deleted. Each look
/// reads the variables and then the proxies, so a proxy that disappears
/// while a function still points at it is caught.
pub struct HostWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<(usize, Vec<String>)>>,
}

/// What a function on the proxy needs besides a live endpoint: the proxy's
/// security group admitting the function's, and the connect policy on the
/// function's role, allowing `rds-db:connect` to that proxy (its `prx-` id
/// in the policy's default version).
#[derive(Clone)]
pub struct Paths {
    pub proxy_sg: String,
    pub policy_arn: String,
    /// Each function's security group and role, by function name.
    pub functions: HashMap<String, (String, String)>,
}

impl HostWatch {
    pub fn start(emu: &Emulator, functions: &[String], variable: &str, db_host: &str) -> HostWatch {
        Self::start_with(emu, functions, variable, db_host, None)
    }

    /// As [`HostWatch::start`], and a function on the proxy must also have
    /// its way in: its group admitted, its role allowed (see [`Paths`]).
    pub fn start_with(
        emu: &Emulator,
        functions: &[String],
        variable: &str,
        db_host: &str,
        paths: Option<Paths>,
    ) -> HostWatch {
        let config = emu.sdk_config();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (functions, variable, db_host) = (
            functions.to_vec(),
            variable.to_string(),
            db_host.to_string(),
        );
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            runtime().block_on(async move {
                let lambda = aws_sdk_lambda::Client::new(&config);
                let rds = aws_sdk_rds::Client::new(&config);
                let (mut looks, mut bad) = (0, Vec::new());
                while !flag.load(Ordering::Relaxed) {
                    let mut values = Vec::new();
                    for f in &functions {
                        let conf = lambda.get_function_configuration().function_name(f).send();
                        if let Ok(conf) = conf.await {
                            let v = conf
                                .environment()
                                .and_then(|e| e.variables())
                                .and_then(|v| v.get(&variable))
                                .cloned();
                            values.push((f.clone(), v));
                        }
                    }
                    // Each live proxy's endpoint and `prx-` id.
                    let live: Vec<(String, String)> = match rds.describe_db_proxies().send().await {
                        Ok(p) => p
                            .db_proxies()
                            .iter()
                            .filter(|p| p.status().map(|s| s.as_str()) != Some("deleting"))
                            .filter_map(|p| {
                                let id = p.db_proxy_arn()?.rsplit(':').next()?.to_string();
                                Some((p.endpoint()?.to_string(), id))
                            })
                            .collect(),
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    looks += 1;
                    for (f, v) in values {
                        let proxy = live.iter().find(|(e, _)| Some(e) == v.as_ref());
                        let on_proxy = proxy.is_some();
                        let ok = v.as_deref() == Some(db_host.as_str()) || on_proxy;
                        if !ok {
                            bad.push(format!("{f}.{variable} = {v:?} (live proxies: {live:?})"));
                        }
                        let Some((paths, (sg, role))) = paths
                            .as_ref()
                            .and_then(|p| p.functions.get(&f).map(|w| (p, w)))
                            .filter(|_| on_proxy)
                        else {
                            continue;
                        };
                        let id = &proxy.expect("on the proxy").1;
                        if let Some(missing) = way_in(&config, paths, sg, role, id).await {
                            // Only if it is still there: a function that moved
                            // on meanwhile took its way with it.
                            let now = lambda.get_function_configuration().function_name(&f);
                            let now = now.send().await.ok().and_then(|c| {
                                c.environment()?.variables()?.get(&variable).cloned()
                            });
                            if now == v {
                                bad.push(format!("{f} is on the proxy without {missing}"));
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                (looks, bad)
            })
        });
        HostWatch {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops watching; panics with every value seen that was not a working
    /// host, or if the watch never looked.
    #[track_caller]
    pub fn assert_always_working(mut self, what: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let (looks, bad) = self.thread.take().unwrap().join().unwrap();
        assert!(looks > 0, "{what}: the watch never looked");
        assert!(
            bad.is_empty(),
            "{what}: a function pointed at no working host: {bad:#?}"
        );
    }
}

/// A watch dropped without its assertion (its test failed first) stops
/// looking, rather than spinning on an emulator that is gone.
impl Drop for HostWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One variable of a Lambda function, as the emulator holds it.
pub fn function_variable(emu: &Emulator, function: &str, variable: &str) -> Option<String> {
    let config = emu.sdk_config();
    runtime().block_on(async {
        aws_sdk_lambda::Client::new(&config)
            .get_function_configuration()
            .function_name(function)
            .send()
            .await
            .unwrap()
            .environment()
            .and_then(|e| e.variables())
            .and_then(|v| v.get(variable))
            .cloned()
    })
}

/// What a function on proxy `proxy_id` lacks of its way in, if anything.
async fn way_in(
    config: &aws_config::SdkConfig,
    paths: &Paths,
    sg: &str,
    role: &str,
    proxy_id: &str,
) -> Option<String> {
    let rules = aws_sdk_ec2::Client::new(config)
        .describe_security_group_rules()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-id")
                .values(&paths.proxy_sg)
                .build(),
        )
        .send()
        .await
        .ok()?;
    let admitted = rules.security_group_rules().iter().any(|r| {
        r.is_egress() == Some(false)
            && r.referenced_group_info().and_then(|g| g.group_id()) == Some(sg)
    });
    if !admitted {
        return Some(format!("{sg} admitted by {}", paths.proxy_sg));
    }
    let attached = aws_sdk_iam::Client::new(config)
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .ok()?;
    let allowed = attached
        .attached_policies()
        .iter()
        .any(|p| p.policy_arn() == Some(paths.policy_arn.as_str()));
    if !allowed {
        return Some(format!("{} on role {role}", paths.policy_arn));
    }
    let iam = aws_sdk_iam::Client::new(config);
    let policy = iam
        .get_policy()
        .policy_arn(&paths.policy_arn)
        .send()
        .await
        .ok()?;
    let version = policy.policy()?.default_version_id()?.to_string();
    let doc = iam
        .get_policy_version()
        .policy_arn(&paths.policy_arn)
        .version_id(version)
        .send()
        .await
        .ok()?;
    let doc = url_decode(doc.policy_version()?.document()?);
    (!doc.contains(proxy_id)).then(|| format!("rds-db:connect to {proxy_id} in {doc}"))
}

/// Sets the pool's MaxConnectionsPercent of a proxy's default target group
/// by hand, as in the console.
pub fn set_pool_by_hand(emu: &Emulator, proxy: &str, max_connections_percent: i32) {
    let config = emu.sdk_config();
    runtime().block_on(async {
        aws_sdk_rds::Client::new(&config)
            .modify_db_proxy_target_group()
            .db_proxy_name(proxy)
            .target_group_name("default")
            .connection_pool_config(
                aws_sdk_rds::types::ConnectionPoolConfiguration::builder()
                    .max_connections_percent(max_connections_percent)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
}
