//! Building Prometheus metric families from snapshot values (the encoding itself is the
//! `prometheus` crate's `TextEncoder`).

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use rpcudp_proto::rpc::stats::{LatencyHistogram, LATENCY_BOUNDS_MICROS};

/// The families of one scrape, in the order they are added.
#[derive(Default)]
pub(crate) struct Families(pub(crate) Vec<MetricFamily>);

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(name, value)| {
            let mut l = LabelPair::default();
            l.set_name((*name).to_owned());
            l.set_value((*value).to_owned());
            l
        })
        .collect()
}

impl Families {
    fn family(&mut self, name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) {
        // The encoder refuses a family without samples; such a family says nothing anyway.
        if metrics.is_empty() {
            return;
        }
        let mut f = MetricFamily::default();
        f.set_name(name.to_owned());
        f.set_help(help.to_owned());
        f.set_field_type(kind);
        f.set_metric(metrics);
        self.0.push(f);
    }

    /// A counter (`name` ends in `_total`) with one sample per label set.
    pub(crate) fn counters(&mut self, name: &str, help: &str, samples: &[(&[(&str, &str)], u64)]) {
        let metrics = samples
            .iter()
            .map(|(ls, v)| {
                let mut c = Counter::default();
                c.set_value(*v as f64);
                let mut m = Metric::default();
                m.set_label(labels(ls));
                m.set_counter(c);
                m
            })
            .collect();
        self.family(name, help, MetricType::COUNTER, metrics);
    }

    /// A counter with one label, one sample per `(label value, count)` row.
    pub(crate) fn counters_by(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        rows: &[(&str, u64)],
    ) {
        let labels: Vec<[(&str, &str); 1]> = rows.iter().map(|(r, _)| [(label, *r)]).collect();
        let samples: Vec<(&[(&str, &str)], u64)> = labels
            .iter()
            .zip(rows)
            .map(|(l, (_, n))| (&l[..], *n))
            .collect();
        self.counters(name, help, &samples);
    }

    /// A counter without labels.
    pub(crate) fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.counters(name, help, &[(&[], value)]);
    }

    /// A gauge with one sample per label set.
    pub(crate) fn gauges(&mut self, name: &str, help: &str, samples: &[(&[(&str, &str)], f64)]) {
        let metrics = samples
            .iter()
            .map(|(ls, v)| {
                let mut g = Gauge::default();
                g.set_value(*v);
                let mut m = Metric::default();
                m.set_label(labels(ls));
                m.set_gauge(g);
                m
            })
            .collect();
        self.family(name, help, MetricType::GAUGE, metrics);
    }

    /// A gauge without labels.
    pub(crate) fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.gauges(name, help, &[(&[], value)]);
    }

    /// A histogram in seconds from the core's fixed-bucket microsecond histogram.
    pub(crate) fn histogram(&mut self, name: &str, help: &str, h: &LatencyHistogram) {
        let mut buckets = Vec::with_capacity(LATENCY_BOUNDS_MICROS.len());
        let mut cumulative = 0u64;
        for (bound, n) in LATENCY_BOUNDS_MICROS.iter().zip(h.buckets.iter()) {
            cumulative += n;
            let mut b = Bucket::default();
            b.set_upper_bound(*bound as f64 / 1e6);
            b.set_cumulative_count(cumulative);
            buckets.push(b);
        }
        let mut hist = Histogram::default();
        hist.set_bucket(buckets);
        hist.set_sample_count(h.count);
        hist.set_sample_sum(h.sum_micros as f64 / 1e6);
        let mut m = Metric::default();
        m.set_histogram(hist);
        self.family(name, help, MetricType::HISTOGRAM, vec![m]);
    }
}
