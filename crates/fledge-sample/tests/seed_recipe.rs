//! The original article's manual recipe, run verbatim with the AWS CLI against the local
//! platform (`--endpoint-url`), then 2,000 invocations of the 5% alias.

mod common;

use common::{aws, aws_cli_or_skip, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_articles_recipe_runs_verbatim_with_the_aws_cli() {
    let Some(cli) = aws_cli_or_skip() else {
        return;
    };
    let p = start("recipe").await;
    let work = common::Scratch::new("recipe-files");
    std::fs::write(work.join("function.zip"), common::sample_zip("v1")).unwrap();
    let e = p.endpoint.clone();

    // The setup the article assumes: a function with version 1 behind an alias.
    aws(
        &cli,
        &e,
        &work,
        &[
            "lambda",
            "create-function",
            "--function-name",
            "myfunction",
            "--runtime",
            "provided.al2023",
            "--handler",
            "bootstrap",
            "--role",
            common::ROLE,
            "--zip-file",
            "fileb://function.zip",
            "--publish",
        ],
    );
    aws(
        &cli,
        &e,
        &work,
        &[
            "lambda",
            "create-alias",
            "--function-name",
            "myfunction",
            "--name",
            "myalias",
            "--function-version",
            "1",
        ],
    );

    // The recipe.
    std::fs::write(work.join("function.zip"), common::sample_zip("v2")).unwrap();
    aws(
        &cli,
        &e,
        &work,
        &[
            "lambda",
            "update-function-code",
            "--function-name",
            "myfunction",
            "--zip-file",
            "fileb://function.zip",
        ],
    );
    let published = aws(
        &cli,
        &e,
        &work,
        &["lambda", "publish-version", "--function-name", "myfunction"],
    );
    assert_eq!(published["Version"], "2");
    let split = aws(
        &cli,
        &e,
        &work,
        &[
            "lambda",
            "update-alias",
            "--function-name",
            "myfunction",
            "--name",
            "myalias",
            "--routing-config",
            r#"{"AdditionalVersionWeights" : {"2" : 0.05} }"#,
        ],
    );
    assert_eq!(
        split["RoutingConfig"]["AdditionalVersionWeights"]["2"],
        0.05
    );

    let invoked = aws(
        &cli,
        &e,
        &work,
        &[
            "lambda",
            "invoke",
            "--function-name",
            "myfunction:myalias",
            "--payload",
            "{}",
            "out.json",
        ],
    );
    assert!(
        ["1", "2"].contains(&invoked["ExecutedVersion"].as_str().unwrap()),
        "{invoked}"
    );

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = p.lambda.clone();
        tasks.push(tokio::spawn(async move {
            let mut on_v2 = 0u32;
            for _ in 0..250 {
                if common::invoke(&client, "myfunction:myalias", "{}").await.0 == "2" {
                    on_v2 += 1;
                }
            }
            on_v2
        }));
    }
    let mut on_v2 = 0;
    for t in tasks {
        on_v2 += t.await.unwrap();
    }
    // Binomial(2000, 0.05): mean 100, sd 9.75; five sd either side.
    assert!(
        (51..=149).contains(&on_v2),
        "version 2 served {on_v2} of 2000"
    );

    let metrics = aws(
        &cli,
        &e,
        &work,
        &[
            "cloudwatch",
            "get-metric-statistics",
            "--namespace",
            "AWS/Lambda",
            "--metric-name",
            "Invocations",
            "--dimensions",
            "Name=FunctionName,Value=myfunction",
            "Name=Resource,Value=myfunction:myalias",
            "Name=ExecutedVersion,Value=2",
            "--start-time",
            "2000-01-01T00:00:00Z",
            "--end-time",
            "2100-01-01T00:00:00Z",
            "--period",
            "86400",
            "--statistics",
            "Sum",
        ],
    );
    let sum: f64 = metrics["Datapoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["Sum"].as_f64().unwrap())
        .sum();
    let cli_invocation_on_v2 = u32::from(invoked["ExecutedVersion"] == "2");
    assert_eq!(
        sum,
        f64::from(on_v2 + cli_invocation_on_v2),
        "CloudWatch (JSON 1.0, as the CLI speaks it) counts what the callers saw"
    );

    // "verify that the new version is healthy", then promote.
    let promoted = aws(
        &cli,
        &e,
        &work,
        &[
            "lambda",
            "update-alias",
            "--function-name",
            "myfunction",
            "--name",
            "myalias",
            "--function-version",
            "2",
            "--routing-config",
            "{}",
        ],
    );
    assert_eq!(promoted["FunctionVersion"], "2");
    assert!(promoted.get("RoutingConfig").is_none(), "{promoted}");
}
