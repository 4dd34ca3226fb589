//! What the benchmark tables' child processes share: each is started by its table as
//! `tricolor <hidden sub-command> <allocator> <value> <value>` and parses that line here.

use std::process::ExitCode;
use std::str::FromStr;
use tricolor_benches::Rival;

/// The allocator and two values of a child's arguments; on anything else, says so on stderr
/// and gives the exit code to return.
pub fn args<T: FromStr, U: FromStr>(
    child: &str,
    args: &[String],
) -> Result<(Rival, T, U), ExitCode> {
    match (
        args.first().and_then(|s| Rival::parse(s)),
        args.get(1).and_then(|s| s.parse().ok()),
        args.get(2).and_then(|s| s.parse().ok()),
    ) {
        (Some(r), Some(a), Some(b)) => Ok((r, a, b)),
        _ => {
            eprintln!("tricolor: bad {child} arguments {args:?}");
            Err(ExitCode::from(2))
        }
    }
}
