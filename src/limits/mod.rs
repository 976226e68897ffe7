//! AWS's limits on the values a runbook holds, so that they are checked
//! before any call instead of discovered as an AWS error half-way through a
//! run. Where AWS's API models state a limit as data (a length, a pattern),
//! it comes from [`model`], generated from them by
//! `localstack/tools/constraints.py` (and checked against them by the
//! tests); where the models state it only in words, or only the service's
//! guide does, it is written here with its source, and the unit tests below
//! hold each number to the model's words.

// Every field the runbook feeds is in the table; those whose limits are
// in words only are read by the tests below, which hold the limits written
// here to them.
#[allow(dead_code)]
pub mod model;

use std::ops::RangeInclusive;

/// One field of one AWS request as the model describes it.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// The service, API version and member in the model.
    pub model: &'static str,
    /// Length bounds, in characters (Unicode scalar values, as AWS counts).
    pub min: Option<u64>,
    pub max: Option<u64>,
    /// A Java regular expression the whole value must match.
    pub pattern: Option<&'static str>,
    /// The member's documentation, when it gives the limits in words.
    #[allow(dead_code)] // read by the tests
    pub words: &'static str,
}

/// How a value misses its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misfit {
    TooShort(u64),
    TooLong(u64),
    /// Does not match the pattern (given as the model writes it).
    Pattern(&'static str),
}

impl Shape {
    /// How `value` misses the model's length and pattern, if it does.
    pub fn misfit(&self, value: &str) -> Option<Misfit> {
        let len = value.chars().count() as u64;
        if let Some(min) = self.min.filter(|m| len < *m) {
            return Some(Misfit::TooShort(min));
        }
        if let Some(max) = self.max.filter(|m| len > *m) {
            return Some(Misfit::TooLong(max));
        }
        let pattern = self.pattern?;
        (!full_match(pattern, value)).then_some(Misfit::Pattern(pattern))
    }
}

/// Whether the whole of `value` matches `pattern`, a Java regular
/// expression as AWS's models write them. Each pattern is compiled once.
pub fn full_match(pattern: &'static str, value: &str) -> bool {
    // An NFA simulation: built in microseconds, where a DFA of the tag
    // pattern's Unicode classes takes most of a second in a debug build.
    use regex_automata::nfa::thompson::pikevm::PikeVM;
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    // Global: AWS's patterns, each compiled once per process (and leaked:
    // a few dozen, for the process's life) whoever checks a value.
    static COMPILED: OnceLock<Mutex<HashMap<&'static str, &'static PikeVM>>> = OnceLock::new();
    let regex: &'static PikeVM = {
        let mut cache = COMPILED
            .get_or_init(Default::default)
            .lock()
            .expect("poisoned");
        cache.entry(pattern).or_insert_with(|| {
            let anchored = format!(r"\A(?:{})\z", java_classes(pattern));
            let regex = PikeVM::new(&anchored)
                .unwrap_or_else(|e| panic!("AWS's pattern {pattern:?} does not compile: {e}"));
            Box::leak(Box::new(regex))
        })
    };
    regex.is_match(&mut regex.create_cache(), value)
}

/// `pattern` with Java's ASCII-only `\w`, `\d` and `\s` spelled out (in
/// Rust's regular expressions they are Unicode classes); `\p{..}` classes
/// mean the same in both.
fn java_classes(pattern: &str) -> String {
    let mut out = String::new();
    let mut in_class = false;
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    out.push(c);
                    break;
                };
                let ascii = match next {
                    'w' => Some("a-zA-Z0-9_"),
                    'd' => Some("0-9"),
                    's' => Some(r" \t\n\x0B\f\r"),
                    _ => None,
                };
                match ascii {
                    Some(set) if in_class => out.push_str(set),
                    Some(set) => out.push_str(&format!("[{set}]")),
                    None => {
                        out.push(c);
                        out.push(next);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

// --- Limits the models give in words only -------------------------------

/// IdleClientTimeout, seconds: "Constraints: 1 to 28,800" (RDS's model,
/// DBProxy.IdleClientTimeout: the request's member says no more).
pub const IDLE_CLIENT_TIMEOUT: RangeInclusive<i64> = 1..=28_800;
/// MaxConnectionsPercent: "Must be between 1 and 100" (RDS's model).
pub const MAX_CONNECTIONS_PERCENT: RangeInclusive<i64> = 1..=100;
/// MaxIdleConnectionsPercent: "between 0 and the value of
/// MaxConnectionsPercent" (RDS's model; the parser compares the two).
pub const MAX_IDLE_CONNECTIONS_PERCENT: RangeInclusive<i64> = 0..=100;
/// ConnectionBorrowTimeout, seconds: "Must be between 0 and 300" (RDS's
/// model).
pub const CONNECTION_BORROW_TIMEOUT: RangeInclusive<i64> = 0..=300;

/// A security group's name and description: "Up to 255 characters in
/// length ... Valid characters: a-z, A-Z, 0-9, spaces, and
/// ._-:/()#,@[]+=&;{}!$*" (EC2's model, CreateSecurityGroup; AWS's EC2
/// API reference says the same for a group in a VPC).
pub const GROUP_TEXT_MAX: usize = 255;
pub const GROUP_TEXT_SYMBOLS: &str = "._-:/()#,@[]+=&;{}!$*";

/// Whether `c` may be in a security group's name or description.
pub fn group_text_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ' ' || GROUP_TEXT_SYMBOLS.contains(c)
}

/// The tags the tool puts on a proxy, its endpoints, its role, its policy
/// and its security group must fit all three services: keys 1 to 127
/// characters (EC2's model: "a maximum of 127"; IAM's and RDS's 128),
/// values 0 to 256 (IAM's model; RDS takes empty values although its words
/// say 1 to 256), both in IAM's pattern (RDS's words give the same one).
pub const TAG_KEY_MAX: u64 = 127;
/// "can't be prefixed with aws: or rds:" (RDS's model, of keys and values);
/// "May not begin with aws:" (EC2's model). AWS refuses `aws:` in any case.
pub const TAG_RESERVED_PREFIXES: [&str; 2] = ["aws:", "rds:"];

/// The names a function's variables may not have: Lambda sets them itself
/// (AWS Lambda Developer Guide, "Working with Lambda environment
/// variables", "Defined runtime environment variables": "The keys for these
/// environment variables are reserved and cannot be set in your function
/// configuration"). Not reserved there, although older lists have them:
/// TZ, AWS_XRAY_CONTEXT_MISSING and AWS_XRAY_DAEMON_ADDRESS (the guide's
/// "Unreserved environment variables").
pub const LAMBDA_RESERVED_VARIABLES: [&str; 18] = [
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// A function's variables, all together: "The total size of all
/// environment variables doesn't exceed 4 KB" (AWS Lambda Developer Guide;
/// "Lambda quotas": 4 KB, not adjustable). Lambda measures the variables
/// as one JSON object (its refusal quotes the "String measured").
pub const LAMBDA_ENVIRONMENT_BYTES: usize = 4096;

/// The size Lambda measures of a function's variables.
pub fn environment_size<'a>(variables: impl IntoIterator<Item = (&'a str, &'a str)>) -> usize {
    let map: std::collections::BTreeMap<&str, &str> = variables.into_iter().collect();
    serde_json::to_string(&map).map_or(0, |s| s.len())
}

// --- CloudWatch: the proxy's alarms (PutMetricAlarm) ---------------------

/// An alarm's period, seconds: "Valid values are 10, 20, 30, and any
/// multiple of 60" (CloudWatch's model, PutMetricAlarm's Period).
pub const ALARM_SHORT_PERIODS: [i64; 3] = [10, 20, 30];
/// "Period multiplied by EvaluationPeriods can't be more than 604,800
/// seconds. For alarms with a period of less than one hour (3,600
/// seconds), the total evaluation period can't be longer than one day
/// (86,400 seconds)" (the same member's words).
pub const ALARM_SPAN_MAX: i64 = 604_800;
pub const ALARM_SPAN_MAX_SHORT: i64 = 86_400;
pub const ALARM_SHORT_BELOW: i64 = 3_600;

/// Why an alarm of `period` seconds over `evaluation_periods` periods is
/// refused by CloudWatch, with the fix; None: it is not.
pub fn alarm_period_problem(period: i64, evaluation_periods: i64) -> Option<String> {
    if !(ALARM_SHORT_PERIODS.contains(&period) || (period > 0 && period % 60 == 0)) {
        return Some(format!(
            "{period} is not a CloudWatch alarm period: use 10, 20, 30 or a multiple of 60 \
             seconds"
        ));
    }
    let most = if period < ALARM_SHORT_BELOW {
        ALARM_SPAN_MAX_SHORT
    } else {
        ALARM_SPAN_MAX
    };
    let span = period * evaluation_periods;
    (span > most).then(|| {
        let why = if most == ALARM_SPAN_MAX_SHORT {
            "a day, for periods under an hour"
        } else {
            "seven days"
        };
        format!(
            "{evaluation_periods} periods of {period}s cover {span}s, more than CloudWatch \
             evaluates ({most}s: {why}): use fewer periods ({} at most) or longer ones",
            most / period
        )
    })
}

/// An alarm's tags: "as many as 50" (the model's words of
/// PutMetricAlarm's Tags).
pub const ALARM_TAGS_MAX: usize = 50;

#[cfg(test)]
mod tests {
    use super::model::*;
    use super::*;

    #[test]
    fn the_numbers_written_here_are_the_models_words() {
        let said = |s: &Shape, words: &str| {
            assert!(
                s.words.contains(words),
                "{}: the model now says {:?}: update src/limits/mod.rs",
                s.model,
                s.words
            )
        };
        // On the response's member: the request's says nothing of its range.
        said(&model::IDLE_CLIENT_TIMEOUT, "1 to 28,800");
        assert_eq!(super::IDLE_CLIENT_TIMEOUT, 1..=28_800);
        said(&model::MAX_CONNECTIONS_PERCENT, "between 1 and 100");
        assert_eq!(super::MAX_CONNECTIONS_PERCENT, 1..=100);
        said(
            &model::MAX_IDLE_CONNECTIONS_PERCENT,
            "between 0 and the value of MaxConnectionsPercent",
        );
        assert_eq!(*super::MAX_IDLE_CONNECTIONS_PERCENT.start(), 0);
        said(&model::CONNECTION_BORROW_TIMEOUT, "between 0 and 300");
        assert_eq!(super::CONNECTION_BORROW_TIMEOUT, 0..=300);
        for s in [&EC2_GROUP_NAME, &EC2_GROUP_DESCRIPTION] {
            said(s, &format!("Up to {GROUP_TEXT_MAX} characters"));
            said(s, &format!("spaces, and {GROUP_TEXT_SYMBOLS}"));
        }
        said(&EC2_TAG_KEY, &format!("a maximum of {TAG_KEY_MAX} "));
        said(&EC2_TAG_KEY, "May not begin with aws:");
        said(&RDS_TAG_KEY, "can't be prefixed with aws: or rds:");
        said(&RDS_TAG_VALUE, "can't be prefixed with aws: or rds:");
        said(&EC2_TAG_VALUE, "a maximum of 256 ");
        // One check serves both names: it must stay one rule.
        let endpoint = (DB_PROXY_ENDPOINT_NAME.min, DB_PROXY_ENDPOINT_NAME.max);
        assert_eq!((DB_PROXY_NAME.min, DB_PROXY_NAME.max), endpoint);
        assert_eq!(DB_PROXY_NAME.pattern, DB_PROXY_ENDPOINT_NAME.pattern);
        // IAM's model, as data: the tightest of the three but for EC2's 127.
        assert_eq!((IAM_TAG_KEY.min, IAM_TAG_KEY.max), (Some(1), Some(128)));
        assert_eq!(IAM_TAG_VALUE.max, Some(256));
        // CloudWatch's alarms.
        said(
            &CLOUDWATCH_PERIOD,
            &format!(
                "Valid values are {}, {}, {}, and any multiple of 60.",
                ALARM_SHORT_PERIODS[0], ALARM_SHORT_PERIODS[1], ALARM_SHORT_PERIODS[2]
            ),
        );
        said(&CLOUDWATCH_PERIOD, "can't be more than 604,800 seconds");
        assert_eq!(ALARM_SPAN_MAX, 604_800);
        said(
            &CLOUDWATCH_PERIOD,
            "less than one hour (3,600 seconds), the total evaluation period can't be longer \
             than one day (86,400 seconds)",
        );
        assert_eq!((ALARM_SHORT_BELOW, ALARM_SPAN_MAX_SHORT), (3_600, 86_400));
        said(
            &CLOUDWATCH_TAGS,
            &format!("as many as {ALARM_TAGS_MAX} tags"),
        );
        said(
            &CLOUDWATCH_ALARM_NAME,
            "can't contain ASCII control characters",
        );
        // The tags the tool checks (EC2's 127, IAM's 256) fit CloudWatch's,
        // and IAM's count of 50 is CloudWatch's.
        assert!(CLOUDWATCH_TAG_KEY.max >= Some(TAG_KEY_MAX));
        assert!(CLOUDWATCH_TAG_VALUE.max >= IAM_TAG_VALUE.max);
        assert_eq!(IAM_TAGS.max, Some(ALARM_TAGS_MAX as u64));
        // PutMetricAlarm's counts, as data.
        assert_eq!(CLOUDWATCH_EVALUATION_PERIODS.min, Some(1));
        assert_eq!(CLOUDWATCH_DATAPOINTS_TO_ALARM.min, Some(1));
        assert_eq!(CLOUDWATCH_PERIOD.min, Some(1));
    }

    #[test]
    fn alarm_periods_follow_cloudwatch() {
        assert_eq!(alarm_period_problem(60, 5), None);
        assert_eq!(alarm_period_problem(20, 6), None);
        for bad in [0, 45, 90, -60] {
            assert!(
                alarm_period_problem(bad, 1)
                    .unwrap()
                    .contains("use 10, 20, 30 or a multiple of 60"),
                "{bad}"
            );
        }
        // Under an hour: a day at most.
        assert_eq!(alarm_period_problem(300, 288), None);
        let why = alarm_period_problem(300, 289).unwrap();
        assert!(
            why.contains("86700s") && why.contains("288 at most"),
            "{why}"
        );
        assert!(alarm_period_problem(30, 2881).unwrap().contains("86400s"));
        // An hour and more: seven days.
        assert_eq!(alarm_period_problem(3600, 168), None);
        assert!(alarm_period_problem(3600, 169).unwrap().contains("604800s"));
    }

    #[test]
    fn patterns_are_read_as_java_reads_them() {
        // \w is ASCII in Java: an IAM name with an accented letter is refused.
        assert!(full_match(
            IAM_ROLE_NAME.pattern.unwrap(),
            "AWSCookbook403RDSProxy"
        ));
        assert!(!full_match(IAM_ROLE_NAME.pattern.unwrap(), "rôle"));
        assert!(!full_match(IAM_ROLE_NAME.pattern.unwrap(), "a b"));
        // \p{L}: any letter; no comma, no parenthesis.
        let key = IAM_TAG_KEY.pattern.unwrap();
        assert!(full_match(key, "Équipe 2/a=b+c-d@e:f_g.h"));
        assert!(!full_match(key, "a, b (team)"));
        assert!(!full_match(key, ""));
        assert!(full_match(IAM_TAG_VALUE.pattern.unwrap(), ""));
        // `.*`: one line.
        let one_line = AUTH_DESCRIPTION.pattern.unwrap();
        assert!(full_match(one_line, "the app's secret"));
        assert!(!full_match(one_line, "two\nlines"));
        // The whole value, not a part of it.
        let name = DB_PROXY_NAME.pattern.unwrap();
        assert!(full_match(name, "my-proxy-1"));
        for bad in ["9-proxy", "my--proxy", "proxy-", "my_proxy"] {
            assert!(!full_match(name, bad), "{bad}");
        }
        let var = LAMBDA_VARIABLE_NAME.pattern.unwrap();
        assert!(full_match(var, "DB_HOST"));
        for bad in ["DB-HOST", "D", "1DB", "_HANDLER"] {
            assert!(!full_match(var, bad), "{bad}");
        }
    }

    #[test]
    fn a_shape_names_how_a_value_misses_it() {
        assert_eq!(DB_PROXY_NAME.misfit(&"a".repeat(63)), None);
        assert_eq!(
            DB_PROXY_NAME.misfit(&"a".repeat(64)),
            Some(Misfit::TooLong(63))
        );
        assert_eq!(AUTH_DESCRIPTION.misfit(""), Some(Misfit::TooShort(1)));
        assert_eq!(AUTH_DESCRIPTION.misfit("a\nb"), Some(Misfit::Pattern(".*")));
        // Characters, not bytes.
        assert_eq!(AUTH_DESCRIPTION.misfit(&"é".repeat(1000)), None);
    }

    #[test]
    fn the_environment_is_measured_as_lambda_does() {
        assert_eq!(environment_size([]), 2);
        assert_eq!(environment_size([("A", "b")]), r#"{"A":"b"}"#.len());
        // Quotes in a value count escaped.
        assert_eq!(environment_size([("A", "\"")]), r#"{"A":"\""}"#.len());
    }
}
