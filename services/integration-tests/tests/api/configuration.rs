//! Layered configuration as operators use it: the real binary, a file, the environment.

use integration_tests::processes::bin_dir;
use std::process::Command;

fn gateway(file: &std::path::Path, env: &[(&str, &str)]) -> std::process::Output {
    Command::new(bin_dir().join("gateway"))
        .arg("--config")
        .arg(file)
        .arg("--print-config")
        .env("SC_AUTH__SECRET", "a-secret-that-is-long-enough-0123456789")
        .envs(env.iter().copied())
        .output()
        .expect("run gateway --print-config")
}

#[test]
fn a_file_overrides_defaults_the_environment_overrides_the_file_and_bad_values_name_their_key() {
    let dir = std::env::temp_dir().join(format!("sc-config-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gateway.toml");
    std::fs::write(&file, "[gateway]\nhistory_on_join = 7\nmax_rooms_per_connection = 3\n").unwrap();

    let output = gateway(
        &file,
        &[
            ("SC_GATEWAY__MAX_ROOMS_PER_CONNECTION", "9"),
            ("SC_REDIS__URL", "redis://:hunter2@cache:6379"),
            ("SC_RUNTIME__WORKER_THREADS", "1"),
        ],
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: toml::Value = toml::from_str(&String::from_utf8(output.stdout).unwrap()).unwrap();
    assert_eq!(
        printed["gateway"]["history_on_join"].as_integer(),
        Some(7),
        "from the file"
    );
    assert_eq!(
        printed["gateway"]["max_rooms_per_connection"].as_integer(),
        Some(9),
        "the environment wins"
    );
    assert_eq!(
        printed["gateway"]["outbound_queue"].as_integer(),
        Some(1024),
        "a default"
    );
    assert_eq!(printed["runtime"]["worker_threads"].as_integer(), Some(1));
    assert_eq!(printed["auth"]["secret"].as_str(), Some("[redacted]"));
    assert_eq!(printed["redis"]["url"].as_str(), Some("redis://:[redacted]@cache:6379"));

    for (key, value, named) in [
        (
            "SC_GATEWAY__MAX_ROOMS_PER_CONNECTION",
            "lots",
            "gateway.max_rooms_per_connection",
        ),
        ("SC_TELEMETRY__SAMPLING_RATIO", "2.5", "telemetry.sampling_ratio"),
        ("SC_GATEWAY__MAX_ROOM", "4", "max_room"),
        ("SC_RUNTIME__WORKER_THREADS", "5000", "runtime.worker_threads"),
    ] {
        let output = gateway(&file, &[(key, value)]);
        assert!(!output.status.success(), "{key}={value} must stop the gateway");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "the error names `{named}`: {stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
