/// Runs the server. Placeholder until the server module is merged in.
pub async fn serve(
    config: crate::config::Config,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let _ = config;
    Err("server not wired yet".into())
}
