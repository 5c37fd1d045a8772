//! Function URLs on fledge local: their configuration through the official aws-sdk-lambda,
//! and requests to them from a plain HTTP client, answered by the sample function running
//! as real processes behind a split alias.

mod common;

use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::types::{Cors, FunctionUrlAuthType, InvokeMode};
use common::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_on_an_alias_serves_its_split() {
    let p = start("urls").await;
    let v2 = p.split_sample("f", 5, 0.3).await;
    let create = |qualifier: &str| {
        p.lambda
            .create_function_url_config()
            .function_name("f")
            .qualifier(qualifier)
            .auth_type(FunctionUrlAuthType::None)
    };
    let e = create("1").send().await.unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"), "{e:?}");
    let e = create("live")
        .invoke_mode(InvokeMode::ResponseStream)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidParameterValueException"));
    let created = create("live")
        .cors(
            Cors::builder()
                .allow_origins("https://shop.example")
                .allow_methods("POST")
                .max_age(60)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let url = created.function_url().to_owned();
    assert!(url.ends_with('/'), "{url}");
    assert!(created.function_arn().ends_with(":function:f:live"));
    let e = create("live").send().await.unwrap_err();
    assert_eq!(e.code(), Some("ResourceConflictException"));
    let e = p
        .lambda
        .get_function_url_config()
        .function_name("f")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ResourceNotFoundException"));

    // One request, read back from the event the function answered with.
    let http = reqwest::Client::new();
    let answer = http
        .post(format!("{url}orders/7?size=large&size=small"))
        .header("origin", "https://shop.example")
        .header("cookie", "session=abc")
        .body(r#"{"n": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    let answer: serde_json::Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    let event = &answer["event"];
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["rawPath"], "/orders/7");
    assert_eq!(event["queryStringParameters"]["size"], "large,small");
    assert_eq!(event["cookies"][0], "session=abc");
    assert_eq!(event["body"], r#"{"n": 1}"#);
    assert_eq!(event["isBase64Encoded"], false);
    assert_eq!(event["requestContext"]["http"]["method"], "POST");

    let preflight = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.headers()["access-control-allow-methods"], "POST");
    assert_eq!(preflight.headers()["access-control-max-age"], "60");

    // The alias's split holds for the URL's traffic.
    let mut on_v2 = 0;
    for _ in 0..400 {
        let body = http.get(&url).send().await.unwrap().text().await.unwrap();
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        if answer["version"] == v2.as_str() {
            on_v2 += 1;
        }
    }
    // 30% of 400 is 120; 4.4 standard deviations either way.
    assert!((80..=160).contains(&on_v2), "{on_v2} of 400 on version 2");

    // A version that fails answers 502; an answer with a statusCode makes the response.
    let broken = p.publish_with_env("f", &[("SAMPLE_ERROR_RATE", "1")]).await;
    let teapot = p
        .publish_with_env(
            "f",
            &[(
                "SAMPLE_RESPONSE",
                r#"{"statusCode": 418, "headers": {"x-kind": "pot"}, "body": "short and stout"}"#,
            )],
        )
        .await;
    for (alias, version) in [("broken", &broken), ("teapot", &teapot)] {
        p.lambda
            .create_alias()
            .function_name("f")
            .name(alias)
            .function_version(version)
            .send()
            .await
            .unwrap();
    }
    let broken_url = create("broken")
        .send()
        .await
        .unwrap()
        .function_url()
        .to_owned();
    let failed = http.get(&broken_url).send().await.unwrap();
    assert_eq!(failed.status(), 502);
    assert_eq!(
        failed.text().await.unwrap(),
        r#"{"Message":"Internal Server Error"}"#
    );
    let teapot_url = create("teapot")
        .send()
        .await
        .unwrap()
        .function_url()
        .to_owned();
    let brewed = http.get(&teapot_url).send().await.unwrap();
    assert_eq!(brewed.status(), 418);
    assert_eq!(brewed.headers()["x-kind"], "pot");
    assert_eq!(brewed.text().await.unwrap(), "short and stout");

    // AWS_IAM wants a signed request; a deleted URL is gone.
    p.lambda
        .update_function_url_config()
        .function_name("f")
        .qualifier("teapot")
        .auth_type(FunctionUrlAuthType::AwsIam)
        .send()
        .await
        .unwrap();
    assert_eq!(http.get(&teapot_url).send().await.unwrap().status(), 403);
    p.lambda
        .delete_function_url_config()
        .function_name("f")
        .qualifier("broken")
        .send()
        .await
        .unwrap();
    assert_eq!(http.get(&broken_url).send().await.unwrap().status(), 404);
    let listed = p
        .lambda
        .list_function_url_configs()
        .function_name("f")
        .send()
        .await
        .unwrap();
    let mut arns: Vec<&str> = listed
        .function_url_configs()
        .iter()
        .map(|c| c.function_arn().rsplit(':').next().unwrap())
        .collect();
    arns.sort();
    assert_eq!(arns, ["live", "teapot"]);
}
