//! The sample function as its own executable: the `bootstrap` of a deployment package.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), fledge_sample::Error> {
    fledge_sample::run().await
}
