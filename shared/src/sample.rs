//! Deterministic payment records, the reference data of the benchmarks: about 365 bytes of
//! key, JSON value and two headers each, the same sequence for the same seed on every machine.

use crate::segment::{Header, Record, TimestampType};

/// First timestamp of a sample sequence; records are 10 ms apart.
pub const FIRST_TIMESTAMP_MS: i64 = 1_763_732_940_000;

/// Generates payment records from a seed (xorshift64, so no dependency and no platform drift).
#[derive(Debug, Clone)]
pub struct Payments {
    state: u64,
}

impl Payments {
    /// A sequence for `seed`; seed 0 is replaced by a fixed non-zero state (xorshift needs one).
    pub fn new(seed: u64) -> Self {
        Payments {
            state: if seed == 0 {
                0x2545_f491_4f6c_dd1d
            } else {
                seed
            },
        }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// The `n`th payment event, at offset `n`.
    pub fn record(&mut self, n: i64) -> Record {
        let order = format!("order-{:06}", self.next() % 1_000_000);
        let value = format!(
            r#"{{"event":"payment.captured","order_id":"{order}","payment_id":"pay_{:016x}","amount_minor":{},"currency":"{}","merchant":"m-{:03}","card":{{"brand":"{}","last4":"{:04}"}},"customer":"cus_{:012x}","captured_at":{},"sequence":{n},"risk":{{"score":{},"checks":["cvc","avs","3ds"]}}}}"#,
            self.next(),
            self.next() % 500_000,
            ["EUR", "USD", "GBP"][(self.next() % 3) as usize],
            self.next() % 500,
            ["visa", "mc", "amex"][(self.next() % 3) as usize],
            self.next() % 10_000,
            self.next() & 0xffff_ffff_ffff,
            FIRST_TIMESTAMP_MS + n * 10,
            self.next() % 100,
        );
        Record {
            offset: n,
            timestamp: FIRST_TIMESTAMP_MS + n * 10,
            timestamp_type: TimestampType::CreateTime,
            key: Some(order.into_bytes()),
            value: Some(value.into_bytes()),
            headers: vec![
                Header {
                    key: "trace-id".into(),
                    value: Some(format!("{:016x}", self.next()).into_bytes()),
                },
                Header {
                    key: "source".into(),
                    value: Some(b"checkout".to_vec()),
                },
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(seed: u64, count: i64) -> Vec<Record> {
        let mut payments = Payments::new(seed);
        (0..count).map(|n| payments.record(n)).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_records_and_another_seed_others() {
        assert_eq!(sequence(7, 50), sequence(7, 50));
        let differ = sequence(7, 50)
            .iter()
            .zip(sequence(8, 50))
            .filter(|(a, b)| a.key != b.key && a.value != b.value)
            .count();
        assert!(
            differ > 40,
            "another seed gives other records: {differ} of 50 differ"
        );
        let sizes: Vec<usize> = sequence(1, 1000).iter().map(Record::payload_len).collect();
        let average = sizes.iter().sum::<usize>() / sizes.len();
        assert!((340..=390).contains(&average), "about 365 bytes: {average}");
    }
}
