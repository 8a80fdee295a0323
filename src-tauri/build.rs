fn main() {
    let attrs = tauri_build::Attributes::new().config_path("tauri.conf.json").capabilities_path_pattern("src-tauri/capabilities/**/*");
    // A build script fails the build by panicking; the message says why.
    tauri_build::try_build(attrs).expect("tauri build script");
}
