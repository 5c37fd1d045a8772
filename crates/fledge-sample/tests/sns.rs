//! fledge local's SNS (topics and Publish, for rehearsing notifications) through the
//! official aws-sdk-sns, which speaks the AWS query protocol.

mod common;

use aws_sdk_sns::error::ProvideErrorMetadata;
use common::start;

fn sns_client(endpoint: &str) -> aws_sdk_sns::Client {
    let conf = aws_sdk_sns::Config::builder()
        .behavior_version(aws_sdk_sns::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_sns::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sns::config::Credentials::new(
            "fledge", "fledge", None, None, "tests",
        ))
        .build();
    aws_sdk_sns::Client::from_conf(conf)
}

async fn create_topic(sns: &aws_sdk_sns::Client, name: &str) -> String {
    let created = sns.create_topic().name(name).send().await.unwrap();
    created.topic_arn().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_take_published_messages_and_keep_them_across_restarts() {
    let p = start("sns").await;
    let sns = sns_client(&p.endpoint);
    let arn = create_topic(&sns, "releases").await;
    assert!(
        arn.starts_with("arn:aws:sns:us-east-1:") && arn.ends_with(":releases"),
        "{arn}"
    );
    // CreateTopic is idempotent.
    let again = sns.create_topic().name("releases").send().await.unwrap();
    assert_eq!(again.topic_arn(), Some(arn.as_str()));

    let sent = sns
        .publish()
        .topic_arn(&arn)
        .subject("fledge dep-000001: finished")
        .message(r#"{"text":"fledge dep-000001: finished promoted"}"#)
        .send()
        .await
        .unwrap();
    let id = sent.message_id().unwrap().to_owned();
    let (status, body) = p
        .admin("GET", "/_fledge/sns/messages?topic=releases", "")
        .await;
    assert_eq!(status, 200);
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed["messages"][0]["message_id"], id.as_str());
    assert_eq!(
        listed["messages"][0]["subject"],
        "fledge dep-000001: finished"
    );

    // A missing topic and a bad subject are refused as SNS refuses them.
    let missing = arn.replace(":releases", ":nope");
    let e = sns
        .publish()
        .topic_arn(&missing)
        .message("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("NotFound"), "{e:?}");
    assert_eq!(e.message(), Some("Topic does not exist"));
    let e = sns
        .publish()
        .topic_arn(&arn)
        .subject("two\nlines")
        .message("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidParameter"), "{e:?}");

    // Topics persist; messages are a rehearsal's record, kept in memory.
    let dir = p.stop().await;
    let p = common::start_in(dir, |_| {}).await;
    let sns = sns_client(&p.endpoint);
    let topics = sns.list_topics().send().await.unwrap();
    let arns: Vec<&str> = topics
        .topics()
        .iter()
        .filter_map(|t| t.topic_arn())
        .collect();
    assert_eq!(arns, [arn.as_str()]);
    sns.delete_topic().topic_arn(&arn).send().await.unwrap();
    assert!(sns.list_topics().send().await.unwrap().topics().is_empty());
}

/// An HTTP endpoint that keeps the headers and body of each POST to it.
async fn http_sink() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(axum::http::HeaderMap, String)>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body));
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

async fn next_post(
    posts: &mut tokio::sync::mpsc::UnboundedReceiver<(axum::http::HeaderMap, String)>,
) -> (axum::http::HeaderMap, serde_json::Value) {
    let (headers, body) = tokio::time::timeout(std::time::Duration::from_secs(10), posts.recv())
        .await
        .expect("a POST within 10 s")
        .unwrap();
    (headers, serde_json::from_str(&body).unwrap())
}

/// How the first delivery of the message `text` went, once it has ended.
async fn delivery_of(p: &common::TestPlatform, text: &str) -> serde_json::Value {
    nth_delivery_of(p, text, 0).await
}

/// How the `n`th delivery of the message `text` went, once it has ended.
async fn nth_delivery_of(p: &common::TestPlatform, text: &str, n: usize) -> serde_json::Value {
    for _ in 0..200 {
        let (_, body) = p.admin("GET", "/_fledge/sns/messages", "").await;
        let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
        let delivery = listed["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["message"] == text)
            .map(|m| m["deliveries"][n].clone())
            .unwrap_or_default();
        if delivery["status"] == "delivered" || delivery["status"] == "failed" {
            return delivery;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the delivery of {text:?} did not end");
}

fn header<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Subscriptions deliver as SNS does: a function behind an alias gets SNS's event, and an
/// HTTP endpoint, once it has confirmed by visiting its SubscribeURL, gets each message as
/// SNS's JSON with SNS's headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_get_what_is_published() {
    let p = start("sns-subscribers").await;
    let sns = sns_client(&p.endpoint);
    let topic = create_topic(&sns, "orders").await;

    let e = sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint("arn:aws:sqs:us-east-1:000000000000:q")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidParameter"));
    assert!(
        e.message()
            .unwrap_or_default()
            .contains("lambda, http and https")
    );
    let e = sns
        .subscribe()
        .topic_arn(format!("{topic}-missing"))
        .protocol("lambda")
        .endpoint("arn:aws:lambda:us-east-1:000000000000:function:reader")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("NotFound"));

    p.create_sample("reader", &[], 3).await;
    let alias = p
        .lambda
        .create_alias()
        .function_name("reader")
        .name("live")
        .function_version("1")
        .send()
        .await
        .unwrap();
    let to_function = sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("lambda")
        .endpoint(alias.alias_arn().unwrap())
        .send()
        .await
        .unwrap()
        .subscription_arn()
        .unwrap()
        .to_owned();
    assert!(
        to_function.starts_with(&format!("{topic}:")),
        "{to_function}"
    );

    // As on AWS, SNS may invoke the alias only once its policy lets it.
    sns.publish()
        .topic_arn(&topic)
        .message("order 0")
        .send()
        .await
        .unwrap();
    let refused = delivery_of(&p, "order 0").await;
    assert_eq!(refused["status"], "failed", "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("aws lambda add-permission --function-name reader --qualifier live"),
        "{refused}"
    );
    p.lambda
        .add_permission()
        .function_name("reader")
        .qualifier("live")
        .statement_id("sns")
        .action("lambda:InvokeFunction")
        .principal("sns.amazonaws.com")
        .source_arn(&topic)
        .send()
        .await
        .unwrap();

    let (url, mut posts) = http_sink().await;
    let pending = sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("http")
        .endpoint(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(pending.subscription_arn(), Some("pending confirmation"));
    let (headers, confirmation) = next_post(&mut posts).await;
    assert_eq!(
        header(&headers, "x-amz-sns-message-type"),
        "SubscriptionConfirmation"
    );
    assert_eq!(header(&headers, "x-amz-sns-topic-arn"), topic);
    assert_eq!(confirmation["Type"], "SubscriptionConfirmation");
    assert_eq!(confirmation["TopicArn"], topic.as_str());
    let listed = sns
        .list_subscriptions_by_topic()
        .topic_arn(&topic)
        .send()
        .await
        .unwrap();
    let mut shown: Vec<(&str, &str)> = listed
        .subscriptions()
        .iter()
        .map(|s| (s.protocol().unwrap(), s.subscription_arn().unwrap()))
        .collect();
    shown.sort();
    assert_eq!(
        shown,
        [
            ("http", "PendingConfirmation"),
            ("lambda", to_function.as_str())
        ]
    );

    let e = sns
        .confirm_subscription()
        .topic_arn(&topic)
        .token("not-the-token")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.message(), Some("Invalid token"));
    // Confirmed as a subscriber confirms: by visiting the SubscribeURL.
    let subscribe_url = confirmation["SubscribeURL"].as_str().unwrap();
    let path = subscribe_url.strip_prefix(&p.endpoint).unwrap();
    let (status, xml) = p.admin("GET", path, "").await;
    assert_eq!(status, 200, "{xml}");
    let to_http = xml
        .split_once("<SubscriptionArn>")
        .and_then(|(_, rest)| rest.split_once("</SubscriptionArn>"))
        .unwrap()
        .0
        .to_owned();
    assert!(to_http.starts_with(&format!("{topic}:")), "{xml}");

    // The first message makes the function fail; the second is not JSON, so the function
    // takes SNS's event as it is.
    let failing = sns
        .publish()
        .topic_arn(&topic)
        .subject("order 1")
        .message(r#"{"fail": true}"#)
        .send()
        .await
        .unwrap();
    let attribute = |data_type: &str, value: &str| {
        aws_sdk_sns::types::MessageAttributeValue::builder()
            .data_type(data_type)
            .string_value(value)
            .build()
            .unwrap()
    };
    let e = sns
        .publish()
        .topic_arn(&topic)
        .message("order 2")
        .message_attributes("kind", attribute("Text", "order"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidParameter"));
    assert!(e.message().unwrap_or_default().contains("'Text'"), "{e:?}");
    sns.publish()
        .topic_arn(&topic)
        .message("order 2")
        .message_attributes("kind", attribute("String", "order"))
        .message_attributes("amount", attribute("Number", "12.5"))
        .send()
        .await
        .unwrap();
    // A standard topic does not keep the order of its messages.
    let mut two = [next_post(&mut posts).await, next_post(&mut posts).await];
    two.sort_by_key(|(_, m)| m["Message"].as_str().unwrap().to_owned());
    let [(_, second), (headers, first)] = two;
    assert_eq!(header(&headers, "x-amz-sns-message-type"), "Notification");
    assert_eq!(header(&headers, "x-amz-sns-subscription-arn"), to_http);
    assert_eq!(
        header(&headers, "x-amz-sns-message-id"),
        failing.message_id().unwrap()
    );
    assert_eq!(
        header(&headers, "content-type"),
        "text/plain; charset=UTF-8"
    );
    assert_eq!(first["Type"], "Notification");
    assert_eq!(first["Message"], r#"{"fail": true}"#);
    assert_eq!(first["Subject"], "order 1");
    assert_eq!(second["Message"], "order 2");
    assert_eq!(
        second["MessageAttributes"],
        serde_json::json!({
            "amount": {"Type": "Number", "Value": "12.5"},
            "kind": {"Type": "String", "Value": "order"},
        })
    );
    assert!(first.get("MessageAttributes").is_none(), "{first}");
    assert!(second.get("Subject").is_none(), "{second}");

    // The function was invoked through its alias, once per message, and the message
    // steered it.
    let seen = common::invocations_reach(&p, "reader", 2.0).await;
    assert_eq!(seen, (2.0, 1.0), "(invocations, errors) of the function");
    // The endpoint may have the message before its answer is recorded: wait for both.
    for text in ["{\"fail\": true}", "order 2"] {
        for n in 0..2 {
            let delivery = nth_delivery_of(&p, text, n).await;
            assert_eq!(delivery["status"], "delivered", "{delivery}");
        }
    }

    // Unsubscribed, the endpoint gets no more; subscriptions outlive a restart.
    sns.unsubscribe()
        .subscription_arn(&to_http)
        .send()
        .await
        .unwrap();
    let e = sns
        .unsubscribe()
        .subscription_arn(&to_http)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("NotFound"));
    let dir = p.stop().await;
    let p = common::start_in(dir, |_| {}).await;
    let sns = sns_client(&p.endpoint);
    let listed = sns.list_subscriptions().send().await.unwrap();
    let arns: Vec<&str> = listed
        .subscriptions()
        .iter()
        .filter_map(|s| s.subscription_arn())
        .collect();
    assert_eq!(arns, [to_function.as_str()]);
    sns.publish()
        .topic_arn(&topic)
        .message("order 3")
        .send()
        .await
        .unwrap();
    let seen = common::invocations_reach(&p, "reader", 3.0).await.0;
    assert_eq!(
        seen, 3.0,
        "the function's subscription survived the restart"
    );
    assert!(
        posts.try_recv().is_err(),
        "nothing reached the endpoint after it unsubscribed"
    );
}

/// AWS's tutorial "Using Lambda with Amazon SNS", its commands as published but for the
/// function's package and runtime (the sample, as `provided.al2023`), through the AWS CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_sns_tutorial_runs_with_the_aws_cli() {
    let Some(cli) = common::aws_cli_or_skip() else {
        return;
    };
    let p = start("sns-tutorial").await;
    let work = common::Scratch::new("sns-tutorial-files");
    std::fs::write(work.join("function.zip"), common::sample_zip("sns")).unwrap();
    let aws = |args: &[&str]| common::aws(&cli, &p.endpoint, &work, args);

    let topic = aws(&["sns", "create-topic", "--name", "sns-topic-for-lambda"])["TopicArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let function = aws(&[
        "lambda",
        "create-function",
        "--function-name",
        "Function-With-SNS",
        "--zip-file",
        "fileb://function.zip",
        "--handler",
        "bootstrap",
        "--runtime",
        "provided.al2023",
        "--role",
        "arn:aws:iam::123456789012:role/lambda-role",
    ])["FunctionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let granted = aws(&[
        "lambda",
        "add-permission",
        "--function-name",
        "Function-With-SNS",
        "--source-arn",
        &topic,
        "--statement-id",
        "function-with-sns",
        "--action",
        "lambda:InvokeFunction",
        "--principal",
        "sns.amazonaws.com",
    ]);
    assert!(
        granted["Statement"]
            .as_str()
            .unwrap()
            .contains("\"Sid\":\"function-with-sns\""),
        "{granted}"
    );
    let subscribed = aws(&[
        "sns",
        "subscribe",
        "--protocol",
        "lambda",
        "--region",
        "us-east-1",
        "--topic-arn",
        &topic,
        "--notification-endpoint",
        &function,
    ]);
    assert!(
        subscribed["SubscriptionArn"]
            .as_str()
            .unwrap()
            .starts_with(&topic),
        "{subscribed}"
    );
    aws(&[
        "sns",
        "publish",
        "--message",
        "Hello World",
        "--subject",
        "Test",
        "--topic-arn",
        &topic,
    ]);
    let delivery = delivery_of(&p, "Hello World").await;
    assert_eq!(delivery["status"], "delivered", "{delivery}");
    let invocations = common::invocations_reach(&p, "Function-With-SNS", 1.0)
        .await
        .0;
    assert_eq!(invocations, 1.0, "the function ran once for the message");
}

/// Asynchronous invocations send their invocation records to their destinations, as
/// Lambda does: an SNS topic (here read by an HTTP subscriber) or another function; and a
/// failed event goes to its version's dead-letter topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destinations_get_invocation_records() {
    use aws_sdk_lambda::types::{DestinationConfig, InvocationType, OnFailure, OnSuccess};
    let p = common::start_in(common::temp_dir("destinations"), |c| {
        c.async_retry_delays = vec![
            std::time::Duration::from_millis(100),
            std::time::Duration::from_millis(100),
        ];
    })
    .await;
    let sns = sns_client(&p.endpoint);
    let topic = create_topic(&sns, "outcomes").await;
    let (url, mut posts) = http_sink().await;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("http")
        .endpoint(&url)
        .send()
        .await
        .unwrap();
    let (_, confirmation) = next_post(&mut posts).await;
    sns.confirm_subscription()
        .topic_arn(&topic)
        .token(confirmation["Token"].as_str().unwrap())
        .send()
        .await
        .unwrap();

    p.create_sample("worker", &[], 3).await;
    // The failing version also has a dead-letter topic.
    let dead = create_topic(&sns, "dead").await;
    p.lambda
        .update_function_configuration()
        .function_name("worker")
        .dead_letter_config(
            aws_sdk_lambda::types::DeadLetterConfig::builder()
                .target_arn(&dead)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let failing = p
        .publish_with_env("worker", &[("SAMPLE_ERROR_RATE", "1")])
        .await;
    let config = p
        .lambda
        .get_function_configuration()
        .function_name("worker")
        .qualifier(&failing)
        .send()
        .await
        .unwrap();
    assert_eq!(
        config.dead_letter_config().and_then(|d| d.target_arn()),
        Some(dead.as_str())
    );
    p.create_sample("recorder", &[], 3).await;
    let recorder_arn = p
        .lambda
        .get_function()
        .function_name("recorder")
        .send()
        .await
        .unwrap()
        .configuration()
        .unwrap()
        .function_arn()
        .unwrap()
        .to_owned();
    let e = p
        .lambda
        .put_function_event_invoke_config()
        .function_name("worker")
        .destination_config(
            DestinationConfig::builder()
                .on_success(OnSuccess::builder().destination("nonsense").build())
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidParameterValueException"));
    let to = |qualifier: &str, success: Option<&str>, failure: Option<&str>| {
        let mut config = DestinationConfig::builder();
        if let Some(d) = success {
            config = config.on_success(OnSuccess::builder().destination(d).build());
        }
        if let Some(d) = failure {
            config = config.on_failure(OnFailure::builder().destination(d).build());
        }
        p.lambda
            .put_function_event_invoke_config()
            .function_name("worker")
            .qualifier(qualifier)
            .maximum_retry_attempts(1)
            .destination_config(config.build())
            .send()
    };
    let shown = to("1", Some(&topic), None).await.unwrap();
    assert_eq!(
        shown
            .destination_config()
            .and_then(|d| d.on_success())
            .and_then(|s| s.destination()),
        Some(topic.as_str())
    );
    to(&failing, None, Some(&topic)).await.unwrap();
    p.lambda
        .create_alias()
        .function_name("worker")
        .name("stable")
        .function_version("1")
        .send()
        .await
        .unwrap();
    to("stable", Some(&recorder_arn), None).await.unwrap();

    let event = |qualified: String, payload: &'static str| {
        p.lambda
            .invoke()
            .function_name(qualified)
            .invocation_type(InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
    };
    event("worker:1".into(), r#"{"order": 1}"#).await.unwrap();
    event(format!("worker:{failing}"), r#"{"order": 2}"#)
        .await
        .unwrap();
    event("worker:stable".into(), r#"{"order": 3}"#)
        .await
        .unwrap();

    let mut records = Vec::new();
    for _ in 0..2 {
        let (_, notification) = next_post(&mut posts).await;
        let record: serde_json::Value =
            serde_json::from_str(notification["Message"].as_str().unwrap()).unwrap();
        records.push(record);
    }
    records.sort_by_key(|r| r["requestPayload"]["order"].as_i64());
    let [success, failure] = &records[..] else {
        unreachable!()
    };
    assert_eq!(
        success["requestContext"]["condition"], "Success",
        "{success}"
    );
    assert_eq!(success["requestContext"]["approximateInvokeCount"], 1);
    assert!(
        success["requestContext"]["functionArn"]
            .as_str()
            .unwrap()
            .ends_with(":function:worker:1"),
        "{success}"
    );
    assert_eq!(success["responseContext"]["executedVersion"], "1");
    assert_eq!(success["responsePayload"]["version"], "1");
    assert_eq!(
        failure["requestContext"]["condition"], "RetriesExhausted",
        "{failure}"
    );
    assert_eq!(failure["requestContext"]["approximateInvokeCount"], 2);
    assert_eq!(failure["responseContext"]["functionError"], "Unhandled");
    assert!(
        failure["responsePayload"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("sample failure"),
        "{failure}"
    );

    // The failed event itself went to the failing version's dead-letter topic.
    let mut dead_letters = serde_json::Value::Null;
    for _ in 0..200 {
        let (_, body) = p.admin("GET", "/_fledge/sns/messages?topic=dead", "").await;
        dead_letters = serde_json::from_str(&body).unwrap();
        if !dead_letters["messages"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let dead_letters = dead_letters["messages"].as_array().unwrap();
    assert_eq!(dead_letters.len(), 1, "{dead_letters:?}");
    assert_eq!(dead_letters[0]["message"], r#"{"order": 2}"#);
    let attributes = &dead_letters[0]["attributes"];
    assert_eq!(attributes["ErrorCode"]["value"], "200");
    assert!(
        attributes["ErrorMessage"]["value"]
            .as_str()
            .unwrap()
            .contains("sample failure"),
        "{attributes}"
    );
    assert_eq!(
        attributes["RequestID"]["value"],
        failure["requestContext"]["requestId"]
    );

    // The function destination was invoked with the record of the alias's event.
    let ran = common::invocations_reach(&p, "recorder", 1.0).await.0;
    assert_eq!(ran, 1.0, "the recorder got the success record");
}

/// A subscription's filter policy chooses the messages it gets, by their attributes or by
/// their JSON body, and raw delivery hands an endpoint the message itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_policies_choose_what_a_subscriber_gets() {
    let p = start("sns-filters").await;
    let sns = sns_client(&p.endpoint);
    let topic = create_topic(&sns, "orders").await;
    let (url, mut posts) = http_sink().await;
    let e = sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("http")
        .endpoint(&url)
        .attributes("FilterPolicy", r#"{"kind": "order"}"#)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidParameter"));
    assert!(
        e.message().unwrap_or_default().contains("FilterPolicy"),
        "{e:?}"
    );
    let subscription = sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("http")
        .endpoint(&url)
        .attributes(
            "FilterPolicy",
            r#"{"kind": ["order"], "amount": [{"numeric": [">", 10]}]}"#,
        )
        .attributes("RawMessageDelivery", "true")
        .return_subscription_arn(true)
        .send()
        .await
        .unwrap()
        .subscription_arn()
        .unwrap()
        .to_owned();
    let (_, confirmation) = next_post(&mut posts).await;
    sns.confirm_subscription()
        .topic_arn(&topic)
        .token(confirmation["Token"].as_str().unwrap())
        .send()
        .await
        .unwrap();

    let attribute = |data_type: &str, value: &str| {
        aws_sdk_sns::types::MessageAttributeValue::builder()
            .data_type(data_type)
            .string_value(value)
            .build()
            .unwrap()
    };
    for (kind, amount, message) in [
        ("refund", "50", "a refund"),
        ("order", "5", "a small order"),
        ("order", "50", "a large order"),
    ] {
        sns.publish()
            .topic_arn(&topic)
            .message(message)
            .message_attributes("kind", attribute("String", kind))
            .message_attributes("amount", attribute("Number", amount))
            .send()
            .await
            .unwrap();
    }
    let next_raw = async |posts: &mut tokio::sync::mpsc::UnboundedReceiver<_>| {
        let (headers, body): (axum::http::HeaderMap, String) =
            tokio::time::timeout(std::time::Duration::from_secs(10), posts.recv())
                .await
                .expect("a POST within 10 s")
                .unwrap();
        assert_eq!(header(&headers, "x-amz-sns-message-type"), "Notification");
        body
    };
    assert_eq!(
        next_raw(&mut posts).await,
        "a large order",
        "raw, and filtered"
    );

    // By body instead: the scope and the policy change together.
    let set = |name: &str, value: &str| {
        sns.set_subscription_attributes()
            .subscription_arn(&subscription)
            .attribute_name(name)
            .attribute_value(value)
            .send()
    };
    set("FilterPolicyScope", "MessageBody").await.unwrap();
    set("FilterPolicy", r#"{"order": {"status": ["paid"]}}"#)
        .await
        .unwrap();
    let e = set("DeliveryPolicy", "{}").await.unwrap_err();
    assert!(
        e.message().unwrap_or_default().contains("DeliveryPolicy"),
        "{e:?}"
    );
    for status in ["open", "paid"] {
        sns.publish()
            .topic_arn(&topic)
            .message(format!(r#"{{"order": {{"status": "{status}"}}}}"#))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(
        next_raw(&mut posts).await,
        r#"{"order": {"status": "paid"}}"#
    );
    let shown = sns
        .get_subscription_attributes()
        .subscription_arn(&subscription)
        .send()
        .await
        .unwrap();
    let shown = shown.attributes().unwrap();
    assert_eq!(shown["RawMessageDelivery"], "true");
    assert_eq!(shown["FilterPolicyScope"], "MessageBody");
    assert_eq!(shown["PendingConfirmation"], "false");
    // Nothing else came through.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(posts.try_recv().is_err());
}
