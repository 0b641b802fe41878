//! A stand-in WebTransport server, for the tests of what a client does when a
//! controller misbehaves while a session is set up (drops the session request, or
//! holds it unanswered).

use wtransport::endpoint::endpoint_side::Server;
use wtransport::{Endpoint, Identity, ServerConfig};

/// A bare WebTransport server on `127.0.0.1` with a fresh self-signed certificate.
pub struct StandIn {
    pub endpoint: Endpoint<Server>,
    /// Its UDP port.
    pub port: u16,
    /// SHA-256 of its certificate, lowercase hex (a join grant's `certificate_hash`).
    pub certificate_hash: String,
}

impl std::fmt::Debug for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandIn")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl StandIn {
    pub fn start() -> StandIn {
        let identity = Identity::self_signed(["localhost", "127.0.0.1"]).unwrap();
        let digest = identity.certificate_chain().as_slice()[0].hash();
        let certificate_hash = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let endpoint = Endpoint::server(
            ServerConfig::builder()
                .with_bind_address("127.0.0.1:0".parse().unwrap())
                .with_identity(identity)
                .build(),
        )
        .unwrap();
        let port = endpoint.local_addr().unwrap().port();
        StandIn {
            endpoint,
            port,
            certificate_hash,
        }
    }
}
