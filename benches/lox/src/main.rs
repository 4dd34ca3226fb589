//! `tricolor-lox FILE` runs a Lox script; with no argument, a REPL. Exit codes as clox's:
//! 65 after a compile error, 70 after a runtime error, 74 when the file cannot be read, 64 on
//! a usage error.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use tricolor_lox::{Outcome, Vm};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let mut vm = Vm::new();
    let stdout = std::io::stdout();
    match args.len() {
        1 => {
            let stdin = std::io::stdin();
            loop {
                print!("> ");
                let _ = std::io::stdout().flush();
                let mut line = String::new();
                if stdin.lock().read_line(&mut line).unwrap_or(0) == 0 {
                    println!();
                    return ExitCode::SUCCESS;
                }
                vm.interpret(&line, &mut stdout.lock());
            }
        }
        2 => {
            let Ok(source) = std::fs::read_to_string(&args[1]) else {
                eprintln!("Could not open file \"{}\".", args[1]);
                return ExitCode::from(74);
            };
            let mut out = std::io::BufWriter::new(stdout.lock());
            let r = vm.interpret(&source, &mut out);
            let _ = out.flush();
            // For `tricolor bench --lox`: the collector's figures on stderr.
            if std::env::var_os("TRICOLOR_LOX_STATS").is_some() {
                let s = vm.gc_stats();
                eprintln!(
                    "gcstats cycles={} pause_max_ns={} gc_cpu_pm={}",
                    s.cycles,
                    s.pause_max_ns,
                    (s.gc_cpu_fraction * 1000.0).round() as u64
                );
            }
            match r {
                Outcome::Ok => ExitCode::SUCCESS,
                Outcome::CompileError => ExitCode::from(65),
                Outcome::RuntimeError => ExitCode::from(70),
            }
        }
        _ => {
            eprintln!("Usage: tricolor-lox [path]");
            ExitCode::from(64)
        }
    }
}
