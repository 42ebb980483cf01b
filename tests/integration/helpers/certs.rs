//! Test certificates made with `openssl`: a CA of the test's own and a
//! server certificate it signed for `127.0.0.1` and `localhost`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Paths of what [`make`] wrote.
pub struct Certificates {
    /// The CA's certificate (PEM): what a client is told to trust.
    pub ca: PathBuf,
    /// The server's certificate (PEM), signed by `ca`.
    pub cert: PathBuf,
    /// The server's private key (PEM, unencrypted).
    pub key: PathBuf,
}

/// Makes a CA and a server certificate signed by it in `dir` (EC P-256,
/// valid two days).
pub fn make(dir: &Path) -> Certificates {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A name of its own: two test CAs are told apart by name, as two
    // real authorities are.
    let ca_name = format!(
        "/CN=ferric-test-ca {}",
        dir.file_name().unwrap_or_default().to_string_lossy()
    );
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", &ca_name,
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "key.pem",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    Certificates {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    }
}
