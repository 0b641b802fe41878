//! Criterion benchmarks: parsing, evaluating a cached parse, rendering and
//! odds for a handful of everyday expressions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use dice::Rng;
use std::hint::black_box;

const EXPRESSIONS: &[&str] = &["1d20", "4d6kh3", "8d6!", "1d20+5>15t2d6+4", "10d10>=7f1"];

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for expr in EXPRESSIONS {
        group.bench_function(*expr, |b| b.iter(|| dice::parse(black_box(expr))));
    }
    group.finish();
}

fn evaluate(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate");
    for expr in EXPRESSIONS {
        let program = dice::parse(expr).expect("benchmark expressions parse");
        let mut rng = Rng::seeded(1);
        group.bench_function(*expr, |b| b.iter(|| black_box(&program).roll(&mut rng)));
    }
    group.finish();
}

fn parse_roll_render(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse+roll+render");
    for expr in EXPRESSIONS {
        let mut rng = Rng::seeded(1);
        let mut out = String::new();
        group.bench_function(*expr, |b| {
            b.iter(|| {
                out.clear();
                if let Ok(o) = dice::roll(black_box(expr), &mut rng) {
                    o.write_plain(&mut out);
                }
                out.len()
            })
        });
    }
    group.finish();
}

fn roll_plain(c: &mut Criterion) {
    let mut group = c.benchmark_group("roll_plain (cached parse, streamed text)");
    for expr in EXPRESSIONS {
        let program = dice::parse(expr).expect("benchmark expressions parse");
        let mut rng = Rng::seeded(1);
        let mut out = String::new();
        group.bench_function(*expr, |b| {
            b.iter(|| {
                out.clear();
                black_box(&program).roll_plain(&mut rng, &mut out)
            })
        });
    }
    group.finish();
}

fn odds(c: &mut Criterion) {
    let mut group = c.benchmark_group("odds");
    for expr in EXPRESSIONS {
        group.bench_function(*expr, |b| b.iter(|| dice::odds(black_box(expr))));
    }
    group.finish();
}

criterion_group!(
    benches,
    parse,
    evaluate,
    parse_roll_render,
    roll_plain,
    odds
);
criterion_main!(benches);
