//! Criterion benches for the per-request hot paths: CoAP encode and decode, payload templating, the client
//! exchange round (start, transmit, match the response), and recording a sample into the collector.
//!
//!     cargo bench -p coap-harness --bench hot_paths

use coap_harness::coap::{
    option, ClientEndpoint, Code, Message, MessageType, Token, TransmissionParams,
};
use coap_harness::metrics::{Collector, Outcome, Sample};
use coap_harness::scenario::template::{PayloadTemplate, RenderContext};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Instant;

fn telemetry_post() -> Message {
    let mut m = Message::new(
        MessageType::Con,
        Code::POST,
        0x1234,
        Token::new(&[1, 2, 3, 4]).unwrap(),
    );
    m.set_path("/api/v1/dev-00042/telemetry");
    m.add_uint_option(option::CONTENT_FORMAT, 50);
    m.payload = br#"{"temperature":25,"humidity":61.5,"seq":1234}"#.to_vec();
    m
}

fn codec(c: &mut Criterion) {
    let msg = telemetry_post();
    let wire = msg.to_bytes();
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode telemetry POST", |b| {
        let mut out = Vec::with_capacity(128);
        b.iter(|| {
            out.clear();
            black_box(&msg).encode(&mut out);
            black_box(out.len())
        })
    });
    g.bench_function("decode telemetry POST", |b| {
        b.iter(|| Message::decode(black_box(&wire)).unwrap())
    });
    let ack = Message::new(MessageType::Ack, Code::CREATED, 0x1234, msg.token).to_bytes();
    g.bench_function("decode piggybacked 2.01", |b| {
        b.iter(|| Message::decode(black_box(&ack)).unwrap())
    });
    g.finish();
}

fn template(c: &mut Criterion) {
    let t = PayloadTemplate::parse(
        r#"{"temperature":{{random:15..30}},"humidity":{{random:30.0..70.0}},"seq":{{counter}}}"#,
    )
    .unwrap();
    let mut rng = fastrand::Rng::with_seed(1);
    let mut out = Vec::with_capacity(128);
    let mut n = 0u64;
    c.bench_function("template render telemetry", |b| {
        b.iter(|| {
            out.clear();
            n += 1;
            t.render(
                &mut RenderContext {
                    index: 42,
                    token: "dev-00042",
                    counter: n,
                    rng: &mut rng,
                    unix_ms: 0,
                },
                &mut out,
            );
            black_box(out.len())
        })
    });
}

fn exchange(c: &mut Criterion) {
    let mut ep = ClientEndpoint::new(TransmissionParams::default(), 7);
    let base = telemetry_post();
    c.bench_function("exchange round (start, transmit, match ACK)", |b| {
        b.iter(|| {
            let now = Instant::now();
            ep.start(now, base.clone());
            let sent = ep.poll_transmit().unwrap();
            let req = Message::decode(&sent).unwrap();
            let ack =
                Message::new(MessageType::Ack, Code::CREATED, req.message_id, req.token).to_bytes();
            ep.handle_datagram(now, &ack);
            black_box(ep.poll_event().unwrap())
        })
    });
}

fn record(c: &mut Criterion) {
    let mut collector = Collector::new(1);
    let batch: Vec<Sample> = (0..128u64)
        .map(|i| Sample {
            phase: 0,
            outcome: Outcome::Ok,
            code: Some(Code::CREATED),
            corrected_us: 800 + i * 7,
            uncorrected_us: 600 + i * 5,
            send_lag_us: 50,
            completed_ms: 1000 + i,
            retransmissions: 0,
            broken: 0,
        })
        .collect();
    let mut g = c.benchmark_group("collector");
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function("record a batch of 128 samples", |b| {
        b.iter(|| collector.record_batch(black_box(&batch)))
    });
    g.finish();
}

criterion_group!(benches, codec, template, exchange, record);
criterion_main!(benches);
