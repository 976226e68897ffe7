use super::*;
use aws_sdk_ec2::config::http::HttpResponse;

#[test]
fn a_place_is_told_by_profile_endpoint_and_region() {
    let none = AwsOptions {
        profile: None,
        region: None,
        endpoint_url: None,
    };
    let env = |k: &str| match k {
        "AWS_PROFILE" => Some("team".to_string()),
        "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:4566".to_string()),
        _ => None,
    };
    let rb = RunbookAws {
        region: Some("eu-west-1"),
        profile: None,
    };
    let here = Place::expected(&none, rb, &env);
    assert_eq!(
        here.to_string(),
        "profile team, region eu-west-1, endpoint http://127.0.0.1:4566"
    );
    // The same profile and region at another endpoint: elsewhere.
    let no_endpoint = |k: &str| env(k).filter(|_| k != "AWS_ENDPOINT_URL");
    assert_ne!(here, Place::expected(&none, rb, &no_endpoint));
    // The runbook's profile before the environment's; --region first.
    let opts = AwsOptions {
        region: Some("us-east-1".into()),
        ..none.clone()
    };
    let rb = RunbookAws {
        profile: Some("other"),
        ..rb
    };
    assert_eq!(
        Place::expected(&opts, rb, &no_endpoint).to_string(),
        "profile other, region us-east-1"
    );
}
use aws_sdk_lambda::primitives::SdkBody;

fn answer(status: u16, body: &str) -> String {
    unnamed_answer(&HttpResponse::new(
        status.try_into().unwrap(),
        SdkBody::from(body),
    ))
}

#[test]
fn an_answer_without_a_code_is_still_named() {
    let page = "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>";
    assert_eq!(
        answer(404, page),
        "HTTP 404 without an AWS error code: the endpoint does not offer this call (an \
         emulator without it?); an HTML page \"404 Not Found\""
    );
    assert!(answer(403, "").starts_with("HTTP 403 without an AWS error code: access denied"));
    let unreadable = answer(
        200,
        "<GetBucketVersioningResponse>\n  <Status>Enabled</Status>",
    );
    assert!(
        unreadable.contains("a form the AWS SDK cannot read"),
        "{unreadable}"
    );
    assert!(
        unreadable
            .ends_with("the answer began: <GetBucketVersioningResponse> <Status>Enabled</Status>"),
        "{unreadable}"
    );
    assert_eq!(answer(500, &"x".repeat(500)).matches('x').count(), 200);
}
