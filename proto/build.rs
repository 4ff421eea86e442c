//! Compiles `chat/v1/chat.proto` with protox, a pure-Rust protobuf compiler, so that the
//! build needs nothing outside cargo (no system `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "chat/v1/chat.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["."])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
