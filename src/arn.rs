//! The few ARN facts the recipe needs.

/// The `prx-...` id of a proxy: the 7th `:` field of its ARN (the book's
/// `awk -F: '{ print $7 }'`). The connect policy must use it, not the name.
pub fn proxy_id(arn: &str) -> Option<&str> {
    let id = arn.split(':').nth(6)?;
    id.starts_with("prx-").then_some(id)
}

/// The role name of an IAM role ARN (`arn:aws:iam::ACCOUNT:role/path/NAME`).
pub fn role_name(arn: &str) -> Option<&str> {
    let resource = arn.split(':').nth(5)?;
    let path = resource.strip_prefix("role/")?;
    path.rsplit('/').next().filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_ids() {
        assert_eq!(
            proxy_id("arn:aws:rds:us-east-1:123456789012:db-proxy:prx-0abc123"),
            Some("prx-0abc123")
        );
        assert_eq!(
            proxy_id("arn:aws:rds:us-east-1:123456789012:db-proxy"),
            None
        );
        assert_eq!(proxy_id("arn:aws:rds:us-east-1:1:db:mydb"), None);
        assert_eq!(proxy_id(""), None);
    }

    #[test]
    fn role_names() {
        assert_eq!(role_name("arn:aws:iam::123456789012:role/R"), Some("R"));
        assert_eq!(role_name("arn:aws:iam::123456789012:role/a/b/R"), Some("R"));
        assert_eq!(role_name("arn:aws:iam::123456789012:policy/P"), None);
        assert_eq!(role_name("arn:aws:iam::123456789012:role/"), None);
        assert_eq!(role_name("R"), None);
    }
}
