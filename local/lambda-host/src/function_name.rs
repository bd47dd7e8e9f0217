//! The `FunctionName` of the Invoke API: a name, `name:qualifier`, a partial ARN
//! (`account:function:name`) or a full ARN, as AWS accepts them.

/// The function's plain name, or `None` when `value` is not a function name at all.
pub fn parse(value: &str) -> Option<&str> {
    let parts: Vec<&str> = value.split(':').collect();
    let name = match parts.as_slice() {
        [name] | [name, _] => *name,
        [_account, "function", name] | [_account, "function", name, _] => *name,
        [
            "arn",
            _partition,
            "lambda",
            _region,
            _account,
            "function",
            name,
        ]
        | [
            "arn",
            _partition,
            "lambda",
            _region,
            _account,
            "function",
            name,
            _,
        ] => *name,
        _ => return None,
    };
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn accepts_every_form_aws_accepts() {
        for value in [
            "backup-writer",
            "backup-writer:$LATEST",
            "123456789012:function:backup-writer",
            "arn:aws:lambda:eu-west-1:123456789012:function:backup-writer",
            "arn:aws:lambda:eu-west-1:123456789012:function:backup-writer:live",
        ] {
            assert_eq!(parse(value), Some("backup-writer"), "{value}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_function_name() {
        for value in ["", "arn:aws:s3:::bucket", "has space", "a:b:c:d:e"] {
            assert_eq!(parse(value), None, "{value}");
        }
    }
}
