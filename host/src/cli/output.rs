//! What the commands print. A reader that goes away (`lockstep db status | head -1`) does not
//! stop a command halfway: what it would have read is dropped, the command ends as it would
//! have, and nothing panics. `println!` would panic on the broken pipe.

/// A line on stdout.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Text on stdout, without a newline.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// A line on stderr.
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub(crate) use {say, say_raw, tell};
