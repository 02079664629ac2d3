//! The embedded mock API (being built on its own branch; these stubs keep the crate building).

use std::net::SocketAddr;

/// Mock options.
#[derive(clap::Args, Debug, Clone)]
pub struct MockArgs {}

/// Mock configuration.
#[derive(Clone, Debug, Default)]
pub struct MockConfig {}

impl MockConfig {
    /// Tight limits for `--demo`.
    pub fn tight_demo() -> MockConfig {
        MockConfig {}
    }
}

/// A running mock server.
pub struct MockServer {
    addr: SocketAddr,
}

impl MockServer {
    /// Start on a free loopback port.
    pub async fn start(_config: MockConfig) -> std::io::Result<MockServer> {
        Err(std::io::Error::other("the mock is not built yet"))
    }

    /// Base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Run the standalone mock.
pub async fn run_standalone(_args: MockArgs) -> i32 {
    2
}
