//! Compiles `ferric/v1/*.proto` with protox (pure Rust; no system `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=ferric/v1/tasks.proto");
    let descriptors = protox::compile(["ferric/v1/tasks.proto"], ["."])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
