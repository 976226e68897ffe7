//! Shapes of AWS identifiers and names, checked before any AWS call. Each
//! returns the fix when the value does not fit.

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

/// An IAM role or policy name.
pub fn iam_name(value: &str, max: usize) -> Result<(), String> {
    let ok = (1..=max).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c));
    ok.then_some(()).ok_or_else(|| {
        format!("`{value}` is not an IAM name: 1 to {max} letters, digits and + = , . @ - _")
    })
}

/// A security group name (not an id).
pub fn group_name(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 255 {
        Err(format!(
            "`{value}` is not a security group name: 1 to 255 characters"
        ))
    } else if value.to_ascii_lowercase().starts_with("sg-") {
        Err(format!(
            "`{value}`: a security group name may not start with `sg-`"
        ))
    } else {
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(iam_name("AWSCookbook403RDSProxy", 64).is_ok());
        assert!(iam_name("bad name", 64).is_err());
        assert!(iam_name(&"a".repeat(65), 64).is_err());
        assert!(group_name("AWSCookbook403RDSProxySG").is_ok());
        assert!(group_name("sg-mine").is_err());
        assert!(function_name("DBAppFunction").is_ok());
        assert!(function_name("arn:aws:lambda:us-east-1:123456789012:function:f").is_ok());
        assert!(function_name("my function").is_err());
    }
}
