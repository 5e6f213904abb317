//! The adapter against the fake Graph API over real HTTP: every call, the bytes Meta ends up
//! with, and each failure sorted the way the worker needs it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail the test the same way"
)]

use std::io;
use std::time::Duration;

use bytes::Bytes;
use filegate_adapter_meta::{MetaHttpClient, MetaSettings};
use filegate_application::media_ports::{
    ByteStream, CreateTemplate, MediaUpload, MetaClient, MetaError, SendMessage, TemplateComponent,
};
use filegate_domain::{
    HeaderFormat, MediaMessage, MediaType, NewTemplate, PhoneNumberId, Recipient, TemplateCategory,
    TemplateLanguage, TemplateName, WabaId,
};
use filegate_fake_meta::{
    DEFAULT_ACCESS_TOKEN, FakeMeta, FakeMetaOptions, Fault, FaultTarget, Operation,
};
use futures::StreamExt;
use secrecy::SecretString;
use serde_json::json;
use sha2::{Digest, Sha256};

const PHONE: &str = "106540352242922";
const WABA: &str = "102290129340398";
const APP: &str = "1234567890";

fn settings(fake: &FakeMeta) -> MetaSettings {
    MetaSettings {
        base_url: fake.base_url(),
        app_id: Some(APP.to_owned()),
        access_token: Some(SecretString::from(DEFAULT_ACCESS_TOKEN.to_owned())),
        ..MetaSettings::default()
    }
}

async fn setup() -> (FakeMeta, MetaHttpClient) {
    let fake = FakeMeta::start(FakeMetaOptions {
        app_id: Some(APP.to_owned()),
        ..FakeMetaOptions::default()
    })
    .await
    .unwrap();
    let client = MetaHttpClient::new(&settings(&fake)).unwrap();
    (fake, client)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 253) as u8).collect()
}

/// The bytes as a stream of `chunk`-sized pieces, as the blob store hands them out.
fn stream(bytes: &[u8], chunk: usize) -> ByteStream {
    let pieces: Vec<Result<Bytes, io::Error>> = bytes
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(pieces).boxed()
}

fn media(name: &str, content_type: &str, size: usize) -> MediaUpload {
    MediaUpload {
        file_name: name.to_owned(),
        content_type: content_type.to_owned(),
        size: size as u64,
    }
}

fn phone() -> PhoneNumberId {
    PhoneNumberId::new(PHONE.to_owned()).unwrap()
}

/// A message from `phone_number_id` to a Brazilian number, with the media Meta holds as `id`.
fn message_from(
    phone_number_id: &str,
    media_type: MediaType,
    id: &str,
    caption: Option<&str>,
    file_name: Option<&str>,
) -> SendMessage {
    SendMessage {
        message: MediaMessage::new(
            PhoneNumberId::new(phone_number_id.to_owned()).unwrap(),
            Recipient::new("+5511999990000").unwrap(),
            media_type,
            caption.map(str::to_owned),
            file_name.map(str::to_owned),
        )
        .unwrap(),
        media_id: id.to_owned(),
    }
}

fn image(id: &str) -> SendMessage {
    message_from(PHONE, MediaType::Image, id, None, None)
}

fn template(name: &str, category: TemplateCategory, body: &str, handle: &str) -> CreateTemplate {
    let body: TemplateComponent = json!({"type": "BODY", "text": body})
        .as_object()
        .unwrap()
        .clone();
    CreateTemplate {
        template: NewTemplate::new(
            WabaId::new(WABA.to_owned()).unwrap(),
            TemplateName::new(name.to_owned()).unwrap(),
            TemplateLanguage::new("en_US".to_owned()).unwrap(),
            category,
            vec![body],
        ),
        header_format: HeaderFormat::Image,
        header_handle: handle.to_owned(),
    }
}

fn sha(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

#[tokio::test]
async fn message_media_is_streamed_to_the_media_edge_and_sent_by_id() {
    let (fake, client) = setup().await;
    let photo = pattern(300_000);
    let id = client
        .upload_message_media(
            &phone(),
            &media("photo.jpg", "image/jpeg", photo.len()),
            stream(&photo, 16 * 1024),
        )
        .await
        .unwrap();
    let stored = fake.media(&id).unwrap();
    assert_eq!(stored.bytes, photo);
    assert_eq!(stored.content_type, "image/jpeg");
    assert_eq!(stored.declared_type, "image/jpeg");
    assert_eq!(stored.file_name.as_deref(), Some("photo.jpg"));
    assert_eq!(stored.phone_number_id, PHONE);

    let message = message_from(PHONE, MediaType::Image, &id, Some("Our new brochure"), None);
    let wamid = client.send_message(&message).await.unwrap();
    assert!(wamid.starts_with("wamid."), "{wamid}");
    let sent = fake.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].payload,
        json!({
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": "5511999990000",
            "type": "image", "image": {"id": id, "caption": "Our new brochure"}
        })
    );
    assert_eq!(sent[0].id, wamid);
}

#[tokio::test]
async fn a_document_keeps_its_name_and_bytes() {
    let (fake, client) = setup().await;
    let pdf = pattern(12_345);
    let name = "Relatório de março \"final\".pdf";
    let id = client
        .upload_message_media(
            &phone(),
            &media(name, "application/pdf", pdf.len()),
            stream(&pdf, 1000),
        )
        .await
        .unwrap();
    let stored = fake.media(&id).unwrap();
    assert_eq!(stored.file_name.as_deref(), Some(name));
    assert_eq!(stored.bytes, pdf);
    let message = message_from(PHONE, MediaType::Document, &id, None, Some(name));
    client.send_message(&message).await.unwrap();
    assert_eq!(
        fake.messages()[0].payload,
        json!({
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": "5511999990000",
            "type": "document", "document": {"id": id, "filename": name}
        })
    );
}

#[tokio::test]
async fn template_media_goes_through_a_resumable_upload_into_the_header() {
    let (fake, client) = setup().await;
    let image = pattern(200_000);
    let upload = media("header.png", "image/png", image.len());
    let session = client.start_resumable_upload(&upload).await.unwrap();
    assert!(
        session.starts_with("upload:") && session.contains("?sig="),
        "{session}"
    );
    assert_eq!(client.resumable_offset(&session).await.unwrap(), 0);
    let handle = client
        .upload_resumable(&session, 0, image.len() as u64, stream(&image, 8192))
        .await
        .unwrap();
    let recorded = fake.upload(&session).unwrap();
    assert_eq!(recorded.bytes, image);
    assert_eq!(recorded.handle.as_deref(), Some(handle.as_str()));
    assert_eq!(
        (
            recorded.file_name.as_str(),
            recorded.file_type.as_str(),
            recorded.file_length,
            recorded.app_id.as_str()
        ),
        ("header.png", "image/png", 200_000, APP)
    );
    assert_eq!(client.resumable_offset(&session).await.unwrap(), 200_000);

    let request = template(
        "spring_sale",
        TemplateCategory::Marketing,
        "Our spring sale starts today.",
        &handle,
    );
    let template_id = client.create_template(&request).await.unwrap();
    let templates = fake.templates();
    assert_eq!(templates.len(), 1);
    assert_eq!(templates[0].id, template_id);
    assert_eq!(
        templates[0].payload,
        json!({
            "name": "spring_sale", "language": "en_US", "category": "MARKETING",
            "components": [
                {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": [handle]}},
                {"type": "BODY", "text": "Our spring sale starts today."}
            ]
        })
    );
    assert_eq!(templates[0].waba_id, WABA);
}

#[tokio::test]
async fn bodies_of_several_mebibytes_arrive_identical() {
    let (fake, client) = setup().await;
    let big = pattern(6 * 1024 * 1024 + 123);
    let session = client
        .start_resumable_upload(&media("catalog.pdf", "application/pdf", big.len()))
        .await
        .unwrap();
    client
        .upload_resumable(&session, 0, big.len() as u64, stream(&big, 64 * 1024))
        .await
        .unwrap();
    assert_eq!(sha(&fake.uploaded_bytes(&session).unwrap()), sha(&big));

    let id = client
        .upload_message_media(
            &phone(),
            &media("catalog.pdf", "application/pdf", big.len()),
            stream(&big, 64 * 1024),
        )
        .await
        .unwrap();
    let state = fake.state();
    let summary = state.media.iter().find(|m| m.id == id).unwrap();
    assert_eq!(summary.size, big.len() as u64);
    assert_eq!(summary.sha256, sha(&big));
}

#[tokio::test]
async fn an_upload_cut_mid_body_resumes_from_the_offset_meta_reports() {
    let (fake, client) = setup().await;
    let data = pattern(3 * 1024 * 1024);
    let session = client
        .start_resumable_upload(&media("clip.mp4", "video/mp4", data.len()))
        .await
        .unwrap();
    fake.inject(Fault::drop_connection(
        Operation::ResumableUpload,
        1_000_000,
    ));
    let err = client
        .upload_resumable(&session, 0, data.len() as u64, stream(&data, 32 * 1024))
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::Transient(_)), "{err:?}");
    assert!(err.is_retryable());

    let offset = client.resumable_offset(&session).await.unwrap();
    assert_eq!(offset, 1_000_000);
    let rest = &data[usize::try_from(offset).unwrap()..];
    let handle = client
        .upload_resumable(&session, offset, rest.len() as u64, stream(rest, 32 * 1024))
        .await
        .unwrap();
    assert!(!handle.is_empty());
    assert_eq!(fake.uploaded_bytes(&session).unwrap(), data);
}

#[tokio::test]
async fn a_stalled_upload_fails_as_transient_and_resumes() {
    let (fake, _) = setup().await;
    let client = MetaHttpClient::new(&MetaSettings {
        upload_stall_timeout_secs: 1,
        ..settings(&fake)
    })
    .unwrap();
    // Larger than the loopback socket buffers, so that the client really has to wait.
    let data = pattern(32 * 1024 * 1024);
    let session = client
        .start_resumable_upload(&media("long.mp4", "video/mp4", data.len()))
        .await
        .unwrap();
    fake.inject(Fault::stall(
        Operation::ResumableUpload,
        1024 * 1024,
        Duration::from_secs(3),
    ));
    let started = std::time::Instant::now();
    let err = client
        .upload_resumable(&session, 0, data.len() as u64, stream(&data, 64 * 1024))
        .await
        .unwrap_err();
    let MetaError::Transient(fault) = &err else {
        panic!("{err:?}")
    };
    assert!(fault.message.contains("stalled"), "{fault}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // The offset comes once the broken request is over, and counts what Meta kept.
    let offset = client.resumable_offset(&session).await.unwrap();
    assert!(offset >= 1024 * 1024, "{offset}");
    let rest = &data[usize::try_from(offset).unwrap()..];
    client
        .upload_resumable(&session, offset, rest.len() as u64, stream(rest, 64 * 1024))
        .await
        .unwrap();
    assert_eq!(sha(&fake.uploaded_bytes(&session).unwrap()), sha(&data));
}

#[tokio::test]
async fn a_failing_blob_stream_aborts_the_upload_as_transient() {
    let (fake, client) = setup().await;
    let data = pattern(100_000);
    let session = client
        .start_resumable_upload(&media("a.pdf", "application/pdf", data.len()))
        .await
        .unwrap();
    let broken: ByteStream = futures::stream::iter(vec![
        Ok(Bytes::copy_from_slice(&data[..40_000])),
        Err(io::Error::other("blob read failed")),
    ])
    .boxed();
    let err = client
        .upload_resumable(&session, 0, data.len() as u64, broken)
        .await
        .unwrap_err();
    let MetaError::Transient(fault) = &err else {
        panic!("{err:?}")
    };
    assert!(fault.message.contains("blob read failed"), "{fault}");
    let offset = client.resumable_offset(&session).await.unwrap();
    assert!(offset <= 40_000, "{offset}");
    let handle = client
        .upload_resumable(
            &session,
            offset,
            data.len() as u64 - offset,
            stream(&data[usize::try_from(offset).unwrap()..], 4096),
        )
        .await
        .unwrap();
    assert!(!handle.is_empty());
    assert_eq!(fake.uploaded_bytes(&session).unwrap(), data);
}

#[tokio::test]
async fn rate_limits_are_rate_limited_errors() {
    let (fake, client) = setup().await;
    let id = client
        .upload_message_media(
            &phone(),
            &media("a.png", "image/png", 10),
            stream(&pattern(10), 3),
        )
        .await
        .unwrap();
    let message = image(&id);
    fake.inject(Fault::rate_limit_code(Operation::SendMessage, 130429));
    let err = client.send_message(&message).await.unwrap_err();
    let MetaError::RateLimited(fault) = &err else {
        panic!("{err:?}")
    };
    assert_eq!((fault.status, fault.code), (Some(429), Some(130429)));
    assert_eq!(fault.kind.as_deref(), Some("OAuthException"));
    assert!(fault.fbtrace_id.is_some());

    fake.inject(Fault::rate_limit(Operation::MediaUpload));
    let err = client
        .upload_message_media(
            &phone(),
            &media("a.png", "image/png", 10),
            stream(&pattern(10), 3),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::RateLimited(_)), "{err:?}");
    // Nothing was recorded by the throttled calls; the next ones go through.
    assert!(fake.messages().is_empty());
    client.send_message(&message).await.unwrap();
}

#[tokio::test]
async fn server_errors_and_timeouts_are_transient() {
    let (fake, _) = setup().await;
    let client = MetaHttpClient::new(&MetaSettings {
        request_timeout_secs: 1,
        ..settings(&fake)
    })
    .unwrap();
    fake.inject(Fault::server_error(FaultTarget::Any).times(2));
    let err = client
        .start_resumable_upload(&media("a.pdf", "application/pdf", 10))
        .await
        .unwrap_err();
    let MetaError::Transient(fault) = &err else {
        panic!("{err:?}")
    };
    assert_eq!((fault.status, fault.code), (Some(500), Some(2)));
    let err = client
        .upload_message_media(
            &phone(),
            &media("a.png", "image/png", 10),
            stream(&pattern(10), 3),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::Transient(_)), "{err:?}");

    fake.inject(Fault::delay(
        Operation::CreateTemplate,
        Duration::from_secs(3),
    ));
    let request = template("t", TemplateCategory::Utility, "x", "h");
    let err = client.create_template(&request).await.unwrap_err();
    let MetaError::Transient(fault) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(fault.status, None);
    assert!(fault.message.contains("timed out"), "{fault}");

    // Nobody listening at all.
    let addr = fake.addr();
    fake.shutdown().await;
    let client = MetaHttpClient::new(&MetaSettings {
        base_url: format!("http://{addr}"),
        ..MetaSettings {
            access_token: Some(SecretString::from("x".to_owned())),
            ..MetaSettings::default()
        }
    })
    .unwrap();
    let err = client.send_message(&image("42")).await.unwrap_err();
    assert!(matches!(err, MetaError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn a_bad_token_is_a_permanent_error() {
    let (fake, _) = setup().await;
    let client = MetaHttpClient::new(&MetaSettings {
        access_token: Some(SecretString::from("EAAG-expired".to_owned())),
        ..settings(&fake)
    })
    .unwrap();
    let err = client
        .upload_message_media(
            &phone(),
            &media("a.png", "image/png", 10),
            stream(&pattern(10), 3),
        )
        .await
        .unwrap_err();
    let MetaError::Permanent(fault) = &err else {
        panic!("{err:?}")
    };
    assert_eq!((fault.status, fault.code), (Some(401), Some(190)));
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains("EAAG-expired"));
    for result in [
        client
            .start_resumable_upload(&media("a.pdf", "application/pdf", 10))
            .await
            .map(|_| ()),
        client
            .resumable_offset("upload:abc?sig=x")
            .await
            .map(|_| ()),
        client.send_message(&image("42")).await.map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(MetaError::Permanent(ref f)) if f.code == Some(190)),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn invalid_requests_are_permanent_errors_with_metas_reason() {
    let (_fake, client) = setup().await;
    let err = client
        .start_resumable_upload(&media("a.gif", "image/gif", 10))
        .await
        .unwrap_err();
    let MetaError::Permanent(fault) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(fault.code, Some(100));
    assert!(fault.message.contains("image/gif"), "{fault}");

    let err = client.send_message(&image("42")).await.unwrap_err();
    let MetaError::Permanent(fault) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(fault.code, Some(131009));
    assert!(fault.message.contains("media id 42"), "{fault}");

    // Ids that would change the URL never leave the adapter.
    let outside = message_from("1/../2", MediaType::Image, "42", None, None);
    let err = client.send_message(&outside).await.unwrap_err();
    assert!(
        matches!(err, MetaError::Permanent(ref f) if f.status.is_none()),
        "{err:?}"
    );
}

#[tokio::test]
async fn template_uploads_need_an_app_id() {
    let (fake, _) = setup().await;
    let client = MetaHttpClient::new(&MetaSettings {
        app_id: None,
        ..settings(&fake)
    })
    .unwrap();
    let err = client
        .start_resumable_upload(&media("a.pdf", "application/pdf", 10))
        .await
        .unwrap_err();
    assert!(
        matches!(err, MetaError::Permanent(ref f) if f.message.contains("app_id")),
        "{err:?}"
    );
    assert_eq!(fake.requests_count(Operation::StartUpload), 0);
}
