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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_take_published_messages_and_keep_them_across_restarts() {
    let p = start("sns").await;
    let sns = sns_client(&p.endpoint);
    let arn = sns
        .create_topic()
        .name("releases")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_owned();
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
