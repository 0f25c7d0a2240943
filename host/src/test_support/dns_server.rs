//! A real DNS server on loopback for the tests that prove domains: it answers
//! TXT, CNAME and A queries over UDP and TCP (length-prefixed, RFC 1035 4.2.2)
//! from records the test publishes and removes while it runs
//! (`veneer serve --dns-server <addr>` points the host at it). Messages are
//! parsed and written by hickory-proto; names the test has not published get
//! NXDOMAIN, types it has not published get an empty answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

type Zone = Arc<Mutex<HashMap<String, Vec<RData>>>>;

/// The running server; stops when dropped.
pub struct DnsServer {
    /// Where it listens (UDP and TCP).
    pub addr: SocketAddr,
    zone: Zone,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsServer {
    /// Starts it on a free loopback port.
    pub async fn start() -> Self {
        // A free UDP port whose TCP twin is free too (other tests bind ports
        // meanwhile: try again on a clash).
        let mut attempt = 0;
        let (udp, tcp, addr) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
            let addr = udp.local_addr().expect("udp addr");
            match TcpListener::bind(addr).await {
                Ok(tcp) => break (udp, tcp, addr),
                Err(err) => {
                    attempt += 1;
                    assert!(attempt < 50, "no port free for both UDP and TCP: {err}");
                }
            }
        };
        let zone: Zone = Arc::default();
        let udp_zone = zone.clone();
        let udp_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                    continue;
                };
                if let Some(reply) = answer(&udp_zone, &buf[..n]) {
                    let _ = udp.send_to(&reply, peer).await;
                }
            }
        });
        let tcp_zone = zone.clone();
        let tcp_task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = tcp.accept().await else {
                    continue;
                };
                let zone = tcp_zone.clone();
                tokio::spawn(async move {
                    loop {
                        let Ok(len) = stream.read_u16().await else {
                            return;
                        };
                        let mut query = vec![0u8; usize::from(len)];
                        if stream.read_exact(&mut query).await.is_err() {
                            return;
                        }
                        let Some(reply) = answer(&zone, &query) else {
                            return;
                        };
                        let Ok(len) = u16::try_from(reply.len()) else {
                            return;
                        };
                        if stream.write_u16(len).await.is_err()
                            || stream.write_all(&reply).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            zone,
            tasks: vec![udp_task, tcp_task],
        }
    }

    /// Publishes `values` as the TXT records of `name` (replacing its TXT
    /// records). A value longer than 255 bytes (a DKIM key) is split into
    /// several strings of one record, as DNS requires.
    pub fn set_txt(&self, name: &str, values: &[&str]) {
        let mut zone = self.zone.lock().expect("zone");
        let records = zone.entry(key(name)).or_default();
        records.retain(|r| r.record_type() != RecordType::TXT);
        for value in values {
            let strings = value
                .as_bytes()
                .chunks(255)
                .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
                .collect();
            records.push(RData::TXT(TXT::new(strings)));
        }
    }

    /// Publishes `name` as a CNAME of `target` (replacing its CNAME).
    pub fn set_cname(&self, name: &str, target: &str) {
        let mut zone = self.zone.lock().expect("zone");
        let records = zone.entry(key(name)).or_default();
        records.retain(|r| r.record_type() != RecordType::CNAME);
        let target = Name::from_ascii(format!("{}.", key(target))).expect("a target name");
        records.push(RData::CNAME(CNAME(target)));
    }

    /// Publishes `ip` as the A record of `name` (replacing its A records): an
    /// ACME test CA resolves the names it validates here.
    pub fn set_a(&self, name: &str, ip: std::net::Ipv4Addr) {
        let mut zone = self.zone.lock().expect("zone");
        let records = zone.entry(key(name)).or_default();
        records.retain(|r| r.record_type() != RecordType::A);
        records.push(RData::A(A(ip)));
    }

    /// Removes every record of `name`.
    pub fn remove(&self, name: &str) {
        self.zone.lock().expect("zone").remove(&key(name));
    }
}

fn answer(zone: &Zone, query: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    let mut reply = Message::new();
    reply
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    let zone = zone.lock().ok()?;
    let mut code = ResponseCode::NoError;
    for q in request.queries() {
        reply.add_query(q.clone());
        let name = q.name().to_ascii();
        match zone.get(&key(&name)) {
            None => code = ResponseCode::NXDomain,
            Some(records) => {
                for rdata in records.iter().filter(|r| r.record_type() == q.query_type()) {
                    reply.add_answer(Record::from_rdata(q.name().clone(), 1, rdata.clone()));
                }
            }
        }
    }
    reply.set_response_code(code);
    reply.to_vec().ok()
}
