//! Rules across the entries of a section, which no one value breaks alone:
//! a function's variable set by two `[[lambda]]` tables, and tags that AWS
//! refuses together (too many, one key twice in IAM's eyes) or one by one.

use std::collections::BTreeMap;

use toml_edit::Item;

use super::reader::{Cx, Tbl};
use super::types::*;
use crate::limits::model;
use crate::validate;

/// The function a `[[lambda]]` names, by name: an ARN
/// (`arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`) and the bare
/// name are the same function.
pub(super) fn function_key(name: &str) -> &str {
    name.strip_prefix("arn:")
        .and_then(|_| name.split(':').nth(6))
        .unwrap_or(name)
}

impl Cx<'_> {
    /// A function's variable set by two `[[lambda]]` tables: both would move
    /// it and the last would win (a run and every line of its log would
    /// name the function twice). Refused at the second table. A function
    /// may have a table per variable.
    pub(super) fn lambda_duplicates(&mut self, lambdas: &[Lambda]) {
        let mut seen: BTreeMap<(String, &str), usize> = BTreeMap::new();
        for (i, l) in lambdas.iter().enumerate() {
            let Some(name) = l
                .function_name
                .literal()
                .filter(|_| !l.function_name.unset_env)
            else {
                continue;
            };
            let function = function_key(&name).to_string();
            for var in std::iter::once(&l.env_var).chain(&l.read_env_var) {
                match seen.get(&(function.clone(), var.as_str())) {
                    Some(&first) if first != i => {
                        let line = lambdas[first].pos.line;
                        self.error(
                            l.pos,
                            &format!("lambda[{i}].function_name"),
                            format!(
                                "lambda[{first}] (line {line}) sets {var} of Lambda {function} \
                                 already: both would set it and the last to run would win; keep \
                                 the function in one [[lambda]] table (another table of the \
                                 same function may set another variable)"
                            ),
                        );
                    }
                    Some(_) => {}
                    None => {
                        seen.insert((function.clone(), var.as_str()), i);
                    }
                }
            }
        }
    }

    /// `[tags]` as AWS takes them on every resource the tool tags: each key
    /// and value (see [`validate::tag_key`]), no two keys that differ only
    /// in case (IAM: "Tag keys are case insensitive"), and at most 50 with
    /// the tool's ownership tag (IAM's model: a role's or policy's tags; EC2
    /// and RDS allow 50 per resource too).
    /// `tags`: the values with their `${env.*}` filled.
    pub(super) fn tag_rules(&mut self, top: &Tbl, tags: &BTreeMap<String, String>) {
        let Some(table) = top.table.get("tags").and_then(Item::as_table_like) else {
            return;
        };
        let mut keys: BTreeMap<String, &str> = BTreeMap::new();
        for (key, item) in table.iter() {
            let path = format!("tags.{key}");
            let key_pos = self.pos_of(table.key(key).and_then(|k| k.span()));
            if let Err(why) = validate::tag_key(key) {
                self.error(key_pos, &path, why);
            }
            // (A value still holding `${` is an unset variable of a lenient
            // load, or a step output, refused already.)
            if let Some(value) = tags.get(key).filter(|v| !v.contains("${"))
                && let Err(why) = validate::tag_value(value)
            {
                let pos = self.pos_of(item.span());
                self.error(pos, &path, why);
            }
            let folded = key.to_lowercase();
            if let Some(other) = keys.get(&folded) {
                self.error(
                    key_pos,
                    &path,
                    format!(
                        "`{other}` is a tag already, and IAM takes tag keys case-insensitively \
                         (they would be one tag): keep one of them"
                    ),
                );
            } else if folded == OWNER_TAG.to_lowercase() && key != OWNER_TAG {
                self.error(
                    key_pos,
                    &path,
                    format!(
                        "IAM takes this key as the tool's own `{OWNER_TAG}` (keys are \
                         case-insensitive there): rename it"
                    ),
                );
            }
            keys.insert(folded, key);
        }
        let most = (model::IAM_TAGS.max.unwrap_or(50) as usize).min(crate::limits::ALARM_TAGS_MAX);
        let count = keys.len() + usize::from(!keys.contains_key(&OWNER_TAG.to_lowercase()));
        if count > most {
            let pos = self.pos_of(top.table.get("tags").and_then(Item::span));
            self.error(
                pos,
                "tags",
                format!(
                    "{} tags and the tool's own ownership tag make {count}: IAM takes at most \
                     {most} on a role or policy (AWS's model; EC2 and RDS also allow {most} per \
                     resource, CloudWatch {} on an alarm): remove {}",
                    count - 1,
                    crate::limits::ALARM_TAGS_MAX,
                    count - most
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::function_key;

    #[test]
    fn a_function_is_the_same_by_name_or_arn() {
        assert_eq!(function_key("app"), "app");
        assert_eq!(
            function_key("arn:aws:lambda:us-east-1:123456789012:function:app"),
            "app"
        );
        assert_eq!(
            function_key("arn:aws:lambda:us-east-1:123456789012:function:app:live"),
            "app"
        );
    }
}
