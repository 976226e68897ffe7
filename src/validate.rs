//! Shapes of AWS identifiers and names, checked before any AWS call. Each
//! returns the fix when the value does not fit. AWS's own limits come from
//! [`crate::limits`].

use crate::limits::{self, Misfit, Shape, model};

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// `vpc-...`, `subnet-...`, `sg-...`: the kind and hex digits.
pub fn resource_id(kind: &str, value: &str) -> Result<(), String> {
    match value.strip_prefix(kind).and_then(|r| r.strip_prefix('-')) {
        Some(rest) if is_hex(rest) && rest.len() >= 8 && rest.len() <= 17 => Ok(()),
        _ => Err(format!(
            "`{value}` is not a {kind} id: it looks like `{kind}-0123456789abcdef0`"
        )),
    }
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.chars().all(|c| c.is_ascii_digit())
}

fn arn_parts(arn: &str) -> Option<Vec<&str>> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    (parts.len() == 6 && parts[0] == "arn" && parts[1].starts_with("aws")).then_some(parts)
}

/// A Secrets Manager secret ARN.
pub fn secret_arn(value: &str) -> Result<(), String> {
    let ok = arn_parts(value).is_some_and(|p| {
        p[2] == "secretsmanager"
            && !p[3].is_empty()
            && is_account(p[4])
            && p[5].strip_prefix("secret:").is_some_and(|n| !n.is_empty())
    });
    ok.then_some(()).ok_or_else(|| {
        format!(
            "`{value}` is not a secret ARN: it looks like \
             `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME` (`aws secretsmanager \
             describe-secret --secret-id NAME --query ARN`)"
        )
    })
}

/// An SNS topic ARN (where alarms notify).
pub fn sns_topic_arn(value: &str) -> Result<(), String> {
    let ok = arn_parts(value).is_some_and(|p| {
        let name = p[5].strip_suffix(".fifo").unwrap_or(p[5]);
        p[2] == "sns"
            && !p[3].is_empty()
            && is_account(p[4])
            && (1..=256).contains(&p[5].len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !name.is_empty()
    });
    ok.then_some(()).ok_or_else(|| {
        format!(
            "`{value}` is not an SNS topic ARN: it looks like \
             `arn:aws:sns:REGION:ACCOUNT:NAME` (`aws sns list-topics`)"
        )
    })
}

/// A CloudWatch alarm name: 1 to 255 characters (AlarmName in the API
/// model), no ASCII control characters (the model's words).
pub fn alarm_name(value: &str) -> Result<(), String> {
    let shape = crate::limits::model::CLOUDWATCH_ALARM_NAME;
    if shape.misfit(value).is_some() {
        let (min, max) = (shape.min.unwrap_or(1), shape.max.unwrap_or(255));
        return Err(format!(
            "a CloudWatch alarm name has {min} to {max} characters, and `{value}` has {}: \
             choose a shorter name",
            value.chars().count()
        ));
    }
    if value.chars().any(|c| c.is_ascii_control()) {
        return Err("a CloudWatch alarm name may not hold control characters".into());
    }
    Ok(())
}

/// An IAM role ARN.
pub fn role_arn(value: &str) -> Result<(), String> {
    let ok = arn_parts(value).is_some_and(|p| {
        p[2] == "iam"
            && p[3].is_empty()
            && is_account(p[4])
            && crate::arn::role_name(value).is_some()
    });
    ok.then_some(()).ok_or_else(|| {
        format!("`{value}` is not an IAM role ARN: it looks like `arn:aws:iam::ACCOUNT:role/NAME`")
    })
}

/// An RDS DB instance or cluster identifier.
pub fn db_identifier(value: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_alphabetic())
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !value.ends_with('-')
        && !value.contains("--");
    ok.then_some(()).ok_or_else(|| {
        format!(
            "`{value}` is not a DB identifier: 1 to 63 letters, digits and single hyphens, \
             starting with a letter"
        )
    })
}

/// An IAM role's name (IAM's model: CreateRole's RoleName).
pub fn role_name(value: &str) -> Result<(), String> {
    iam_name(value, &model::IAM_ROLE_NAME)
}

/// An IAM policy's name (IAM's model: CreatePolicy's PolicyName).
pub fn policy_name(value: &str) -> Result<(), String> {
    iam_name(value, &model::IAM_POLICY_NAME)
}

fn iam_name(value: &str, shape: &Shape) -> Result<(), String> {
    match shape.misfit(value) {
        None => Ok(()),
        Some(_) => Err(format!(
            "`{value}` is not an IAM name: 1 to {} letters, digits and + = , . @ - _ (AWS's \
             model: {})",
            shape.max.unwrap_or_default(),
            shape.model
        )),
    }
}

/// A security group's name (not an id): EC2's length, characters and
/// `sg-` rule (see [`limits::GROUP_TEXT_MAX`]).
pub fn group_name(value: &str) -> Result<(), String> {
    if value.to_ascii_lowercase().starts_with("sg-") {
        return Err(format!(
            "`{value}`: a security group name may not start with `sg-`"
        ));
    }
    if value.is_empty() {
        return Err("a security group needs a name: 1 to 255 characters".into());
    }
    group_text(value, "name")
}

/// A security group's description (EC2 takes it only when the group is
/// made: see [`limits::GROUP_TEXT_MAX`]).
pub fn group_description(value: &str) -> Result<(), String> {
    group_text(value, "description")
}

fn group_text(value: &str, what: &str) -> Result<(), String> {
    let len = value.chars().count();
    if len > limits::GROUP_TEXT_MAX {
        return Err(format!(
            "is {len} characters long: EC2 takes a security group {what} of up to {} \
             characters; shorten it",
            limits::GROUP_TEXT_MAX
        ));
    }
    let mut bad: Vec<char> = value
        .chars()
        .filter(|c| !limits::group_text_char(*c))
        .collect();
    bad.dedup();
    if bad.is_empty() {
        return Ok(());
    }
    let shown: String = bad
        .iter()
        .map(|c| format!("`{}`", c.escape_debug()))
        .collect::<Vec<_>>()
        .join(" ");
    Err(format!(
        "holds {shown}, which EC2 does not take in a security group {what} (ASCII letters, \
         digits, spaces and {}): write it without",
        limits::GROUP_TEXT_SYMBOLS
    ))
}

/// A Lambda function name or ARN.
pub fn function_name(value: &str) -> Result<(), String> {
    let ok = if value.starts_with("arn:") {
        arn_parts(value).is_some_and(|p| p[2] == "lambda")
    } else {
        (1..=64).contains(&value.len())
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    ok.then_some(()).ok_or_else(|| {
        format!(
            "`{value}` is not a Lambda function name: 1 to 64 letters, digits, - and _, or its ARN"
        )
    })
}

/// A host name or address, with an optional port: what a function's DB
/// host variable holds (and all the step ever writes back into it).
pub fn host(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'));
    ok.then_some(()).ok_or_else(|| {
        format!(
            "`{value}` is not a host name: give the DB endpoint the variable held before it \
             pointed at the proxy, e.g. mydb.abc123.us-east-1.rds.amazonaws.com"
        )
    })
}

/// A DB user as an `rds-db:connect` resource names it: one user (the
/// connect policy's `*` is for every user, not for a function's own).
pub fn db_user(value: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$' | '@'));
    ok.then_some(()).ok_or_else(|| {
        format!(
            "`{value}` is not a DB user name: 1 to 63 letters, digits and _ - . $ @, the user \
             the function logs in to the DB as"
        )
    })
}

/// A name the runbook gives a function's variable (`env_var`,
/// `read_env_var`): Lambda's pattern, and not one Lambda sets itself.
pub fn variable_name(value: &str) -> Result<(), String> {
    if limits::LAMBDA_RESERVED_VARIABLES.contains(&value) {
        return Err(format!(
            "`{value}` is set by Lambda itself (a reserved name, which AWS refuses to set): \
             name the function's own variable, such as DB_HOST"
        ));
    }
    let shape = &model::LAMBDA_VARIABLE_NAME;
    match shape.misfit(value) {
        None => Ok(()),
        Some(_) => {
            let mut fixed: String = value
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            if !fixed.starts_with(|c: char| c.is_ascii_alphabetic()) {
                fixed.insert_str(0, "DB_");
            }
            Err(format!(
                "`{value}` is not a name Lambda takes for a variable (a letter, then at least \
                 one letter, digit or _; AWS's model: {}): use `{fixed}`, and read that name \
                 in the function",
                shape.pattern.unwrap_or_default()
            ))
        }
    }
}

/// An `[[auth]]` entry's description (RDS's UserAuthConfig Description).
pub fn auth_description(value: &str) -> Result<(), String> {
    let shape = &model::AUTH_DESCRIPTION;
    match shape.misfit(value) {
        None => Ok(()),
        Some(Misfit::Pattern(_)) => Err(
            "holds a line break, which RDS does not take in a description (pattern `.*`: one \
             line): write it on one line"
                .to_string(),
        ),
        Some(_) => Err(format!(
            "is {} characters long: RDS takes {} to {}; shorten it, or remove the line",
            value.chars().count(),
            shape.min.unwrap_or_default(),
            shape.max.unwrap_or_default()
        )),
    }
}

/// A tag's key, for every kind of resource the tool tags (an RDS proxy and
/// its endpoints, an IAM role and policy, an EC2 security group).
pub fn tag_key(key: &str) -> Result<(), String> {
    let len = key.chars().count() as u64;
    if len == 0 || len > limits::TAG_KEY_MAX {
        return Err(format!(
            "a tag key of {len} characters: AWS takes 1 to {} (EC2's limit; IAM and RDS take \
             128); shorten it",
            limits::TAG_KEY_MAX
        ));
    }
    tag_text(key, "key", &model::IAM_TAG_KEY)
}

/// A tag's value (see [`tag_key`]).
pub fn tag_value(value: &str) -> Result<(), String> {
    tag_text(value, "value", &model::IAM_TAG_VALUE)
}

fn tag_text(text: &str, what: &str, shape: &Shape) -> Result<(), String> {
    let lower = text.to_ascii_lowercase();
    if let Some(p) = limits::TAG_RESERVED_PREFIXES
        .iter()
        .find(|p| lower.starts_with(*p))
    {
        return Err(format!(
            "a tag {what} may not start with `{p}` (reserved by AWS{}): rename it",
            if *p == "rds:" { " on RDS" } else { "" }
        ));
    }
    match shape.misfit(text) {
        None => Ok(()),
        Some(Misfit::Pattern(_)) => {
            let mut bad: Vec<char> = text
                .chars()
                .filter(|c| !limits::full_match(shape.pattern.unwrap_or(".*"), &c.to_string()))
                .collect();
            bad.sort_unstable();
            bad.dedup();
            let shown: Vec<String> = bad
                .iter()
                .map(|c| format!("`{}`", c.escape_debug()))
                .collect();
            Err(format!(
                "a tag {what} may hold letters, digits, spaces and _ . : / = + - @ only (AWS's \
                 pattern {}), not {}: replace them",
                shape.pattern.unwrap_or_default(),
                shown.join(" ")
            ))
        }
        Some(_) => Err(format!(
            "a tag {what} of {} characters: AWS takes {} to {}; shorten it",
            text.chars().count(),
            shape.min.unwrap_or_default(),
            shape.max.unwrap_or_default()
        )),
    }
}

/// The description the tool writes on an alarm, cut to what CloudWatch
/// takes (AlarmDescription: 0 to 1024 characters, the model's data): it
/// holds the functions' names, which a long list can push past it.
pub fn alarm_description(text: String) -> String {
    let max = model::CLOUDWATCH_ALARM_DESCRIPTION.max.unwrap_or(1024) as usize;
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alarm_description_is_cut_to_what_cloudwatch_takes() {
        assert_eq!(alarm_description("short".into()), "short");
        let long = alarm_description("é".repeat(2000));
        assert_eq!(long.chars().count(), 1024);
        assert!(long.ends_with('…'));
        assert_eq!(model::CLOUDWATCH_ALARM_DESCRIPTION.misfit(&long), None);
    }

    #[test]
    fn a_db_user_is_one_name() {
        assert!(db_user("app_reader").is_ok());
        assert!(db_user("*").is_err());
        assert!(db_user("a/b").is_err());
        assert!(db_user("").is_err());
    }

    #[test]
    fn a_host_is_a_name_or_address_with_an_optional_port() {
        assert!(host("db.abc.us-east-1.rds.amazonaws.com").is_ok());
        assert!(host("10.0.0.5:3306").is_ok());
        assert!(host("mysql://admin:pw@db:3306/app").is_err());
        assert!(host("").is_err());
    }

    #[test]
    fn ids() {
        assert!(resource_id("vpc", "vpc-0123456789abcdef0").is_ok());
        assert!(resource_id("sg", "sg-828288a23990f34c8").is_ok());
        assert!(resource_id("subnet", "subnet-1234abcd").is_ok());
        for bad in [
            "vpc-",
            "vpc-xyz12345",
            "sg-123",
            "subnet-0123456789abcdef0",
            "0123456789abcdef0",
        ] {
            assert!(resource_id("vpc", bad).is_err(), "{bad}");
        }
        assert!(resource_id("sg", "vpc-0123456789abcdef0").is_err());
    }

    #[test]
    fn arns() {
        assert!(
            secret_arn("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf").is_ok()
        );
        assert!(secret_arn("arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:x").is_ok());
        for bad in [
            "db-secret",
            "arn:aws:secretsmanager:us-east-1:123:secret:x",
            "arn:aws:ssm:us-east-1:123456789012:parameter/x",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:",
        ] {
            assert!(secret_arn(bad).is_err(), "{bad}");
        }
        assert!(role_arn("arn:aws:iam::123456789012:role/R").is_ok());
        assert!(role_arn("arn:aws:iam::123456789012:role/path/R").is_ok());
        assert!(role_arn("arn:aws:iam::123456789012:user/R").is_err());
        assert!(role_arn("arn:aws:iam:us-east-1:123456789012:role/R").is_err());
    }

    #[test]
    fn names() {
        assert!(db_identifier("awscookbook403-db").is_ok());
        for bad in ["", "1db", "db-", "d--b", "d_b", &"a".repeat(64)] {
            assert!(db_identifier(bad).is_err(), "{bad:?}");
        }
        assert!(role_name("AWSCookbook403RDSProxy").is_ok());
        assert!(role_name("bad name").is_err());
        assert!(role_name(&"a".repeat(65)).is_err());
        assert!(policy_name(&"a".repeat(128)).is_ok());
        assert!(policy_name(&"a".repeat(129)).is_err());
        assert!(group_name("AWSCookbook403RDSProxySG").is_ok());
        assert!(group_name("sg-mine").is_err());
        assert!(group_name("Équipe").is_err());
        assert!(function_name("DBAppFunction").is_ok());
        assert!(function_name("arn:aws:lambda:us-east-1:123456789012:function:f").is_ok());
        assert!(function_name("my function").is_err());
    }

    #[test]
    fn a_group_description_is_what_ec2_takes() {
        assert!(group_description("RDS Proxy security group (AWS Cookbook 4.3)").is_ok());
        assert!(group_description(&"a".repeat(255)).is_ok());
        let long = group_description(&"a".repeat(256)).unwrap_err();
        assert!(
            long.contains("256 characters long") && long.contains("up to 255"),
            "{long}"
        );
        let accented = group_description("Sécurité du proxy").unwrap_err();
        assert!(accented.contains("`é`"), "{accented}");
        assert!(group_description("a\tb").is_err());
    }

    #[test]
    fn a_variable_name_is_one_lambda_takes() {
        assert!(variable_name("DB_HOST").is_ok());
        assert!(variable_name("TZ").is_ok(), "TZ is no longer reserved");
        let dash = variable_name("DB-HOST").unwrap_err();
        assert!(dash.contains("use `DB_HOST`"), "{dash}");
        assert!(variable_name("1HOST").unwrap_err().contains("`DB_1HOST`"));
        let reserved = variable_name("AWS_REGION").unwrap_err();
        assert!(reserved.contains("set by Lambda itself"), "{reserved}");
        assert!(variable_name("_HANDLER").unwrap_err().contains("reserved"));
    }

    #[test]
    fn an_auth_description_is_one_line_of_1_to_1000_characters() {
        assert!(auth_description("the app's login").is_ok());
        assert!(
            auth_description("two\nlines")
                .unwrap_err()
                .contains("one line")
        );
        assert!(auth_description("").is_err());
        assert!(
            auth_description(&"a".repeat(1001))
                .unwrap_err()
                .contains("1001")
        );
    }

    #[test]
    fn tags_are_what_rds_iam_and_ec2_all_take() {
        assert!(tag_key("Project").is_ok());
        assert!(tag_value("").is_ok());
        assert!(tag_value("AWSCookbook403").is_ok());
        assert!(tag_key(&"k".repeat(127)).is_ok());
        assert!(tag_key(&"k".repeat(128)).unwrap_err().contains("1 to 127"));
        assert!(
            tag_value(&"v".repeat(257))
                .unwrap_err()
                .contains("0 to 256")
        );
        let comma = tag_value("a, b (team)").unwrap_err();
        assert!(comma.contains("`(` `)` `,`"), "{comma}");
        assert!(tag_key("aws:owner").unwrap_err().contains("`aws:`"));
        assert!(tag_key("AWS:owner").is_err());
        assert!(tag_key("rds:owner").unwrap_err().contains("on RDS"));
        assert!(tag_value("aws:x").is_err());
    }
}
