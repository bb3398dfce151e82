//! The image the Kubernetes manifests run is the one the README builds: same
//! name, and the tag is the crate's version (a release bumps both together).

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn the_manifests_run_the_image_the_readme_builds() {
    let readme = std::fs::read_to_string(format!("{ROOT}/README.md")).unwrap();
    let built: Vec<&str> = readme
        .lines()
        .filter_map(|l| l.trim().strip_prefix("docker build -t "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(built.len(), 1, "one image build command in the README: {built:?}");
    let image = built[0];
    assert_eq!(image, format!("divine-heroes:{}", env!("CARGO_PKG_VERSION")), "tagged with the crate's version");
    for role in ["02-api", "03-battle", "04-gacha"] {
        let manifest = std::fs::read_to_string(format!("{ROOT}/k8s/{role}-deployment.yaml")).unwrap();
        let used: Vec<&str> = manifest.lines().filter_map(|l| l.trim().strip_prefix("image: ")).collect();
        assert_eq!(used, [image], "{role} runs the README's image");
    }
}
