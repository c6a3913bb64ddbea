//! Tries to open a TCP connection; imports wasi:sockets, which is never granted.
use lockstep_step::{Error, Outcome, Step, StepContext, export_step};

struct OpenSocket;

impl Step for OpenSocket {
    fn run(_: &StepContext) -> Result<Outcome, Error> {
        match std::net::TcpStream::connect("127.0.0.1:5432") {
            Ok(_) => Err(Error::Failed(
                "connected: the sandbox let a socket through".into(),
            )),
            Err(e) => Err(Error::Failed(format!("connect failed: {e}"))),
        }
    }
}

export_step!(OpenSocket);
