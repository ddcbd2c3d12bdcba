//! Checks a guest configuration and prints every error:
//! `cargo run -p guestcfg --example check -- FILE.toml [BOARD.dtb]`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(toml) = args.first() else {
        eprintln!("usage: check FILE.toml [BOARD.dtb]");
        return ExitCode::from(2);
    };
    let file = match guestcfg::load(toml.as_ref()) {
        Ok(file) => file,
        Err(errors) => return report(&errors),
    };
    if let Some(dtb) = args.get(1) {
        let blob = match std::fs::read(dtb) {
            Ok(blob) => blob,
            Err(e) => {
                eprintln!("{dtb}: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(errors) = guestcfg::check_against_board(&file, &blob) {
            return report(&errors);
        }
    }
    for guest in &file.guests {
        println!("{}: ok ({:?})", guest.config.name, guest.config);
    }
    ExitCode::SUCCESS
}

fn report(errors: &[guestcfg::ConfigError]) -> ExitCode {
    for e in errors {
        eprintln!("{e}");
    }
    ExitCode::FAILURE
}
