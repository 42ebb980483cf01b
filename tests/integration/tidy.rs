//! Code rules checked as tests: every Rust file opens with a `//!` doc; no
//! test is ignored or expected to panic; api and conductor never depend on
//! each other.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [
        "src",
        "proto",
        "common",
        "api",
        "conductor",
        "agent",
        "tests",
    ] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 30, "found only {} files", files.len());
    let missing: Vec<_> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! module doc: {missing:?}"
    );
    let ignore = ["#[", "ignore]"].concat();
    let should_panic = ["#[", "should_panic"].concat();
    let offenders: Vec<_> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.contains(&ignore) || text.contains(&should_panic)
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "ignored or should_panic tests: {offenders:?}"
    );
}

#[test]
fn crates_import_only_what_the_design_allows() {
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .no_deps()
        .exec()
        .unwrap();
    let deps_of = |name: &str| -> Vec<String> {
        metadata
            .packages
            .iter()
            .find(|p| p.name.as_str() == name)
            .unwrap()
            .dependencies
            .iter()
            // What ships: normal and build dependencies, not dev-dependencies.
            .filter(|d| d.kind != cargo_metadata::DependencyKind::Development)
            .map(|d| d.name.clone())
            .collect()
    };
    assert!(!deps_of("ferric-api").contains(&"ferric-conductor".to_owned()));
    assert!(!deps_of("ferric-conductor").contains(&"ferric-api".to_owned()));
    assert!(!deps_of("ferric-common").iter().any(|d| d == "actix-web"));
    assert_eq!(deps_of("ferric-proto"), ["prost", "prost-build", "protox"]);
    // The ramdisk agent talks to the API over HTTP only.
    assert!(
        !deps_of("ferric-agent")
            .iter()
            .any(|d| d.starts_with("ferric-")),
        "ferric-agent imports another Ferric crate"
    );
}

/// The conductor's task layer: the flows, the periodic passes, the task.
fn task_layer_files(conductor: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&conductor.join("src/tasks"), &mut files);
    for file in ["periodic.rs", "power_sync.rs", "takeover.rs", "task.rs"] {
        files.push(conductor.join("src").join(file));
    }
    files
}

#[test]
fn the_task_layer_never_names_an_interface_implementation() {
    let conductor = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conductor");
    // Every module of drivers/ but the traits, the errors and the table.
    let public = ["mod", "interfaces", "error"];
    let implementations: Vec<String> = std::fs::read_dir(conductor.join("src/drivers"))
        .unwrap()
        .flatten()
        .map(|e| e.path().file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|m| !public.contains(&m.as_str()))
        .collect();
    assert!(
        implementations.iter().any(|m| m == "direct"),
        "{implementations:?}"
    );
    let names: Vec<String> = ferric_conductor::drivers::HARDWARE_TYPES
        .iter()
        .flat_map(|hw| hw.interfaces())
        .flat_map(|(_, names, _)| names)
        .map(|name| format!("\"{name}\""))
        .collect();
    assert!(names.contains(&"\"ipmitool\"".to_owned()));
    for file in task_layer_files(&conductor) {
        let text = std::fs::read_to_string(&file).unwrap();
        for module in &implementations {
            assert!(
                !text.contains(&format!("drivers::{module}")),
                "{} names the implementation module drivers::{module}",
                file.display()
            );
        }
        for name in &names {
            assert!(
                !text.contains(name.as_str()),
                "{} compares the interface name {name}",
                file.display()
            );
        }
    }
}

#[test]
fn drivers_never_import_the_task_handlers() {
    let drivers = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conductor/src/drivers");
    let mut files = Vec::new();
    rust_files(&drivers, &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            !text.contains("crate::tasks"),
            "{} imports the task handlers",
            file.display()
        );
    }
}

#[test]
fn conductor_errors_are_typed_not_stringified() {
    let conductor = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conductor/src");
    let mut files = Vec::new();
    rust_files(&conductor, &mut files);
    let stringified: usize = files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .matches(".map_err(|e| e.to_string())")
                .count()
        })
        .sum();
    assert!(stringified <= 5, "{stringified} errors turned into text");
}
