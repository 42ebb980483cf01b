//! The IPMI side of the simulated BMCs: one UDP socket per BMC answering
//! IPMI 2.0 over LAN as `ipmitool -I lanplus -C 3` and ipmi-rs expect — ASF
//! ping, Get Channel Authentication Capabilities and Get Channel Cipher
//! Suites before a session, the RMCP+ open session and RAKP 1–4 exchange
//! for cipher suite 3 (RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128), then
//! within the session: Get Device ID, Set Session Privilege Level, Close
//! Session, Get Chassis Status, Chassis Control, Chassis Identify and
//! Set/Get System Boot Options (the boot flags mapped to the BMC's boot
//! override).
//!
//! Invariants: a message that fails its integrity check, names an unknown
//! session or a wrong user is dropped or refused and changes nothing; only
//! an active session's commands touch the machine; the BMC's faults apply
//! to every datagram (latency, dropped as "errors", hanging = silence).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::net::UdpSocket;

use crate::fleet::{Bmc, Verdict};
use crate::rmcp::{self, Keys, Packet, Request, V20, payload};

/// The most sessions a BMC keeps (real BMCs keep a handful).
const MAX_SESSIONS: usize = 32;

/// A session being opened or open.
struct Session {
    remote_id: u32,
    privilege: u8,
    state: SessionState,
    /// The BMC's outbound sequence number.
    sequence: u32,
}

enum SessionState {
    /// Open Session answered; RAKP 1 awaited.
    Opened,
    /// RAKP 2 sent; RAKP 3 awaited.
    Challenged {
        remote_random: [u8; 16],
        own_random: [u8; 16],
        role: u8,
        username: Vec<u8>,
    },
    Active(Keys),
}

/// 16 random bytes (a v4 UUID's, from the OS's generator).
fn random16() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

fn random_id() -> u32 {
    let bytes = random16();
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]).max(1)
}

/// The BMC's GUID: stable per BMC.
fn guid(bmc: &Bmc) -> [u8; 16] {
    let mut guid = [0x5a; 16];
    guid[..8].copy_from_slice(&(bmc.index as u64).to_le_bytes());
    guid
}

/// One BMC's protocol state.
pub struct Responder {
    bmc: Arc<Bmc>,
    sessions: HashMap<u32, Session>,
    /// Set System Boot Options parameters, by selector.
    boot_parameters: HashMap<u8, Vec<u8>>,
}

impl Responder {
    pub fn new(bmc: Arc<Bmc>) -> Responder {
        Responder {
            bmc,
            sessions: HashMap::new(),
            boot_parameters: HashMap::new(),
        }
    }

    /// The answer to one datagram, if any.
    pub fn answer(&mut self, datagram: &[u8]) -> Option<Vec<u8>> {
        match rmcp::parse(datagram)? {
            Packet::Ping { tag } => Some(rmcp::pong(tag)),
            Packet::V15 { payload } => {
                let request = rmcp::request(payload)?;
                let (code, data) = self.outside_session(&request);
                Some(rmcp::v15(&rmcp::response(&request, code, &data)))
            }
            Packet::V20(message) => self.rmcp_plus(&message),
        }
    }

    /// The commands answered before any session.
    fn outside_session(&self, request: &Request<'_>) -> (u8, Vec<u8>) {
        match (request.net_fn, request.command) {
            (0x06, 0x38) => (0, auth_capabilities()),
            (0x06, 0x54) => cipher_suites(request.data),
            (0x06, 0x01) => (0, device_id()),
            _ => (0xD4, Vec::new()), // insufficient privilege
        }
    }

    fn rmcp_plus(&mut self, message: &V20<'_>) -> Option<Vec<u8>> {
        match message.payload_type {
            payload::OPEN_SESSION_REQUEST if message.session_id == 0 => {
                Some(self.open_session(message.payload))
            }
            payload::RAKP_1 if message.session_id == 0 => self.rakp_1(message.payload),
            payload::RAKP_3 if message.session_id == 0 => self.rakp_3(message.payload),
            payload::IPMI => self.in_session(message),
            _ => None,
        }
    }

    fn open_session(&mut self, request: &[u8]) -> Vec<u8> {
        let unsigned =
            |payload: &[u8]| rmcp::v20(payload::OPEN_SESSION_RESPONSE, 0, 0, payload, false, None);
        if request.len() < 32 {
            return unsigned(&[request.first().copied().unwrap_or(0), 0x02]);
        }
        let tag = request[0];
        let remote_id = u32::from_le_bytes([request[4], request[5], request[6], request[7]]);
        // Cipher suite 3: RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128.
        let status = match (request[12] & 0x3F, request[20] & 0x3F, request[28] & 0x3F) {
            (1, 1, 1) => 0x00,
            (1, 1, _) => 0x12, // invalid confidentiality algorithm
            (1, _, _) => 0x11, // invalid integrity algorithm
            _ => 0x10,         // invalid authentication algorithm
        };
        let mut answer = vec![tag, status, 0x04, 0x00];
        answer.extend_from_slice(&remote_id.to_le_bytes());
        if status != 0 {
            return unsigned(&answer);
        }
        if self.sessions.len() >= MAX_SESSIONS {
            // Forget the oldest half-open ones first: any session will do.
            if let Some(id) = self.sessions.keys().next().copied() {
                self.sessions.remove(&id);
            }
        }
        let id = random_id();
        let privilege = match request[1] & 0x0F {
            0 | 5.. => 4,
            level => level,
        };
        self.sessions.insert(
            id,
            Session {
                remote_id,
                privilege,
                state: SessionState::Opened,
                sequence: 0,
            },
        );
        answer.extend_from_slice(&id.to_le_bytes());
        answer.extend_from_slice(&[0x00, 0, 0, 0x08, 0x01, 0, 0, 0]);
        answer.extend_from_slice(&[0x01, 0, 0, 0x08, 0x01, 0, 0, 0]);
        answer.extend_from_slice(&[0x02, 0, 0, 0x08, 0x01, 0, 0, 0]);
        unsigned(&answer)
    }

    fn rakp_1(&mut self, request: &[u8]) -> Option<Vec<u8>> {
        let tag = *request.first()?;
        let id = u32::from_le_bytes(request.get(4..8)?.try_into().ok()?);
        let remote_random: [u8; 16] = request.get(8..24)?.try_into().ok()?;
        let role = *request.get(24)?;
        let length = usize::from(*request.get(27)?);
        let username = request.get(28..28 + length)?.to_vec();
        let session = self.sessions.get_mut(&id)?;
        let remote_id = session.remote_id;
        let mut answer = vec![tag, 0x00, 0, 0];
        answer.extend_from_slice(&remote_id.to_le_bytes());
        if username != self.bmc.username.as_bytes() || role & 0x0F > 4 {
            // Unauthorized name (or role): the session goes.
            answer[1] = if role & 0x0F > 4 { 0x09 } else { 0x0D };
            self.sessions.remove(&id);
            return Some(rmcp::v20(payload::RAKP_2, 0, 0, &answer, false, None));
        }
        let own_random = random16();
        let guid = guid(&self.bmc);
        let code = rmcp::hmac_sha1(
            self.bmc.password.as_bytes(),
            &[
                &remote_id.to_le_bytes(),
                &id.to_le_bytes(),
                &remote_random,
                &own_random,
                &guid,
                &[role, u8::try_from(username.len()).unwrap_or(0)],
                &username,
            ],
        );
        answer.extend_from_slice(&own_random);
        answer.extend_from_slice(&guid);
        answer.extend_from_slice(&code);
        session.state = SessionState::Challenged {
            remote_random,
            own_random,
            role,
            username,
        };
        Some(rmcp::v20(payload::RAKP_2, 0, 0, &answer, false, None))
    }

    fn rakp_3(&mut self, request: &[u8]) -> Option<Vec<u8>> {
        let tag = *request.first()?;
        let status = *request.get(1)?;
        let id = u32::from_le_bytes(request.get(4..8)?.try_into().ok()?);
        let session = self.sessions.get_mut(&id)?;
        let SessionState::Challenged {
            remote_random,
            own_random,
            role,
            username,
        } = &session.state
        else {
            return None;
        };
        let mut answer = vec![tag, 0x00, 0, 0];
        answer.extend_from_slice(&session.remote_id.to_le_bytes());
        let length = [*role, u8::try_from(username.len()).unwrap_or(0)];
        let expected = rmcp::hmac_sha1(
            self.bmc.password.as_bytes(),
            &[
                own_random,
                &session.remote_id.to_le_bytes(),
                &length,
                username,
            ],
        );
        if status != 0 || request.get(8..28) != Some(&expected[..]) {
            // The console's proof of the password fails: no session.
            answer[1] = if status != 0 { status } else { 0x0F };
            self.sessions.remove(&id);
            return Some(rmcp::v20(payload::RAKP_4, 0, 0, &answer, false, None));
        }
        let sik = rmcp::hmac_sha1(
            self.bmc.password.as_bytes(),
            &[remote_random, own_random, &length, username],
        );
        let icv = rmcp::hmac_sha1(&sik, &[remote_random, &id.to_le_bytes(), &guid(&self.bmc)]);
        answer.extend_from_slice(&icv[..rmcp::AUTH_CODE_LEN]);
        session.state = SessionState::Active(Keys::from_sik(&sik));
        Some(rmcp::v20(payload::RAKP_4, 0, 0, &answer, false, None))
    }

    fn in_session(&mut self, message: &V20<'_>) -> Option<Vec<u8>> {
        let session = self.sessions.get_mut(&message.session_id)?;
        let SessionState::Active(keys) = &session.state else {
            return None;
        };
        if !message.authenticated || !message.encrypted || !rmcp::verify(keys, message) {
            return None;
        }
        let keys = keys.clone();
        let plain = rmcp::decrypt(&keys, message.payload)?;
        let request = rmcp::request(&plain)?;
        let remote_id = session.remote_id;
        let privilege = session.privilege;
        let (code, data) = self.command(&request, message.session_id, privilege);
        let reply = rmcp::response(&request, code, &data);
        let sequence = match self.sessions.get_mut(&message.session_id) {
            Some(session) => {
                session.sequence = session.sequence.wrapping_add(1).max(1);
                session.sequence
            }
            // Closed by this very command: its answer still goes out.
            None => 1,
        };
        let encrypted = rmcp::encrypt(&keys, random16(), &reply);
        Some(rmcp::v20(
            payload::IPMI,
            remote_id,
            sequence,
            &encrypted,
            true,
            Some(&keys),
        ))
    }

    /// A command inside an active session: completion code and data.
    fn command(&mut self, request: &Request<'_>, session: u32, privilege: u8) -> (u8, Vec<u8>) {
        match (request.net_fn, request.command) {
            (0x06, 0x01) => (0, device_id()),
            (0x06, 0x38) => (0, auth_capabilities()),
            (0x06, 0x54) => cipher_suites(request.data),
            (0x06, 0x3B) => {
                let asked = request.data.first().copied().unwrap_or(0) & 0x0F;
                if asked > privilege {
                    return (0x81, Vec::new()); // above the session's limit
                }
                let level = if asked == 0 { privilege } else { asked };
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.privilege = level;
                }
                (0, vec![level])
            }
            (0x06, 0x3C) => {
                let id = request
                    .data
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map_or(session, u32::from_le_bytes);
                match self.sessions.remove(&id) {
                    Some(_) => (0, Vec::new()),
                    None => (0x87, Vec::new()), // invalid session id
                }
            }
            (0x00, 0x01) => {
                let on = self.bmc.with(|s| s.power_on);
                (0, vec![u8::from(on) | 0x40, 0x00, 0x00, 0x00])
            }
            (0x00, 0x02) => self.chassis_control(request.data),
            (0x00, 0x04) => (0, Vec::new()),
            (0x00, 0x08) => self.set_boot_option(request.data),
            (0x00, 0x09) => self.boot_option(request.data),
            _ => (0xC1, Vec::new()), // invalid command
        }
    }

    fn chassis_control(&self, data: &[u8]) -> (u8, Vec<u8>) {
        match data.first().map(|c| c & 0x0F) {
            Some(0 | 5) => self.bmc.set_power(false),
            Some(1) => self.bmc.set_power(true),
            Some(2 | 3) => {
                // Power cycle / hard reset: the machine comes back on.
                self.bmc.set_power(false);
                self.bmc.set_power(true);
            }
            Some(4) => {}
            _ => return (0xCC, Vec::new()), // invalid data field
        }
        (0, Vec::new())
    }

    fn set_boot_option(&mut self, data: &[u8]) -> (u8, Vec<u8>) {
        let Some((&selector, value)) = data.split_first() else {
            return (0xC7, Vec::new()); // request data length invalid
        };
        let selector = selector & 0x7F;
        if selector == 5 {
            if value.len() < 2 {
                return (0xC7, Vec::new());
            }
            let (flags, device) = (value[0], (value[1] >> 2) & 0x0F);
            let target = match device {
                0 => "None",
                1 => "Pxe",
                2 | 3 => "Hdd",
                5 => "Cd",
                6 => "BiosSetup",
                15 => "Usb",
                _ => return (0xCC, Vec::new()),
            };
            self.bmc.with(|s| {
                s.boot_target = target.into();
                s.boot_enabled = match (flags & 0x80 != 0, flags & 0x40 != 0) {
                    (false, _) => "Disabled".into(),
                    (true, false) => "Once".into(),
                    (true, true) => "Continuous".into(),
                };
                s.boot_mode = if flags & 0x20 != 0 { "UEFI" } else { "Legacy" }.into();
            });
        }
        self.boot_parameters.insert(selector, value.to_vec());
        (0, Vec::new())
    }

    fn boot_option(&self, data: &[u8]) -> (u8, Vec<u8>) {
        let selector = data.first().copied().unwrap_or(0) & 0x7F;
        let stored = self.boot_parameters.get(&selector).cloned();
        let value = match (selector, stored) {
            (_, Some(value)) => value,
            (0, None) => vec![0x00],
            (3, None) => vec![0x1F],
            (4, None) => vec![0x00, 0x00],
            (5, None) => vec![0x00; 5],
            _ => return (0x80, Vec::new()), // parameter not supported
        };
        let mut answer = vec![0x01, selector];
        answer.extend_from_slice(&value);
        (0, answer)
    }
}

/// Get Channel Authentication Capabilities: IPMI 2.0 connections (and
/// extended data), non-null user names, no anonymous login.
fn auth_capabilities() -> Vec<u8> {
    vec![0x01, 0x80, 0x10, 0x02, 0x00, 0x00, 0x00, 0x00]
}

/// Get Channel Cipher Suites: the one record, cipher suite 3.
fn cipher_suites(data: &[u8]) -> (u8, Vec<u8>) {
    let index = data.get(2).copied().unwrap_or(0) & 0x3F;
    let mut answer = vec![0x01];
    if index == 0 {
        answer.extend_from_slice(&[0xC0, 0x03, 0x01, 0x41, 0x81]);
    }
    (0, answer)
}

fn device_id() -> Vec<u8> {
    vec![
        0x20, 0x81, 0x01, 0x00, 0x02, 0xBF, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]
}

/// Serves one BMC's socket until the process ends.
pub async fn serve(bmc: Arc<Bmc>, socket: UdpSocket) {
    let mut responder = Responder::new(bmc.clone());
    let mut buffer = [0u8; 1024];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        match bmc.admit() {
            // A hanging or failing BMC says nothing (UDP has no 500).
            Verdict::Hang | Verdict::Fail { .. } => continue,
            Verdict::Serve { delay } => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
        }
        if let Some(answer) = responder.answer(&buffer[..n]) {
            let _ = socket.send_to(&answer, peer).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Open Session Request for cipher suite 3 but `confidentiality`.
    fn open_request(console_id: u32, confidentiality: u8) -> Vec<u8> {
        let mut open = vec![0x01, 0x04, 0, 0];
        open.extend_from_slice(&console_id.to_le_bytes());
        open.extend_from_slice(&[0x00, 0, 0, 0x08, 0x01, 0, 0, 0]);
        open.extend_from_slice(&[0x01, 0, 0, 0x08, 0x01, 0, 0, 0]);
        open.extend_from_slice(&[0x02, 0, 0, 0x08, confidentiality, 0, 0, 0]);
        open
    }

    /// Sends an unauthenticated RMCP+ message; the answer's payload.
    fn exchange(responder: &mut Responder, kind: u8, payload: &[u8]) -> Vec<u8> {
        let answer = responder
            .answer(&rmcp::v20(kind, 0, 0, payload, false, None))
            .unwrap();
        let Some(Packet::V20(message)) = rmcp::parse(&answer) else {
            panic!("not RMCP+")
        };
        message.payload.to_vec()
    }

    /// A RAKP 1 for `user` with role byte `role`.
    fn rakp_1(bmc_id: u32, rm: [u8; 16], role: u8, user: &[u8]) -> Vec<u8> {
        let mut rakp1 = vec![0x02, 0, 0, 0];
        rakp1.extend_from_slice(&bmc_id.to_le_bytes());
        rakp1.extend_from_slice(&rm);
        rakp1.extend_from_slice(&[role, 0, 0, u8::try_from(user.len()).unwrap()]);
        rakp1.extend_from_slice(user);
        rakp1
    }

    /// A remote console's side of the exchange, as IPMI 2.0 specifies it.
    #[test]
    fn a_console_opens_a_session_and_powers_the_machine_on() {
        let address = "127.0.0.1:623".parse().unwrap();
        let bmc = Arc::new(Bmc::new(3, address, "admin", "s3cret"));
        let mut responder = Responder::new(bmc.clone());
        let console_id = 0xA1A2_A3A4_u32;
        let opened = exchange(
            &mut responder,
            payload::OPEN_SESSION_REQUEST,
            &open_request(console_id, 1),
        );
        assert_eq!(opened[1], 0, "status");
        let bmc_id = u32::from_le_bytes(opened[8..12].try_into().unwrap());

        let rm = [0x11; 16];
        let rakp2 = exchange(
            &mut responder,
            payload::RAKP_1,
            &rakp_1(bmc_id, rm, 0x14, b"admin"),
        );
        assert_eq!(rakp2[1], 0, "status");
        let rc: [u8; 16] = rakp2[8..24].try_into().unwrap();
        let guid: [u8; 16] = rakp2[24..40].try_into().unwrap();
        let ids = [console_id.to_le_bytes(), bmc_id.to_le_bytes()];
        let expected = rmcp::hmac_sha1(
            b"s3cret",
            &[&ids[0], &ids[1], &rm, &rc, &guid, &[0x14, 5], b"admin"],
        );
        assert_eq!(rakp2[40..60], expected, "the BMC proves the password");

        let proof = rmcp::hmac_sha1(b"s3cret", &[&rc, &ids[0], &[0x14, 5], b"admin"]);
        let mut rakp3 = vec![0x03, 0, 0, 0];
        rakp3.extend_from_slice(&ids[1]);
        rakp3.extend_from_slice(&proof);
        let rakp4 = exchange(&mut responder, payload::RAKP_3, &rakp3);
        assert_eq!(rakp4[1], 0, "status");
        let sik = rmcp::hmac_sha1(b"s3cret", &[&rm, &rc, &[0x14, 5], b"admin"]);
        let icv = rmcp::hmac_sha1(&sik, &[&rm, &ids[1], &guid]);
        assert_eq!(rakp4[8..20], icv[..12]);

        // Chassis Control: power up, inside the session.
        let keys = Keys::from_sik(&sik);
        let mut message = vec![0x20, 0x00 << 2];
        message.push(rmcp::checksum(&message));
        message.extend_from_slice(&[0x81, 0x08, 0x02, 0x01]);
        message.push(rmcp::checksum(&message[3..]));
        let sealed = rmcp::encrypt(&keys, [5; 16], &message);
        let packet = rmcp::v20(payload::IPMI, bmc_id, 1, &sealed, true, Some(&keys));
        let answer = responder.answer(&packet).unwrap();
        let Some(Packet::V20(reply)) = rmcp::parse(&answer) else {
            panic!("not RMCP+")
        };
        assert_eq!(reply.session_id, console_id);
        assert!(rmcp::verify(&keys, &reply));
        let plain = rmcp::decrypt(&keys, reply.payload).unwrap();
        assert_eq!(plain[6], 0, "completion code");
        assert!(bmc.with(|s| s.power_on));

        // The same message signed with another key is dropped unanswered.
        let wrong = Keys::from_sik(&[0; 20]);
        let sealed = rmcp::encrypt(&wrong, [5; 16], &message);
        let forged = rmcp::v20(payload::IPMI, bmc_id, 2, &sealed, true, Some(&wrong));
        assert!(responder.answer(&forged).is_none());
    }

    #[test]
    fn a_wrong_user_or_cipher_suite_opens_no_session() {
        let address = "127.0.0.1:623".parse().unwrap();
        let mut responder = Responder::new(Arc::new(Bmc::new(0, address, "admin", "pw")));
        let open = |confidentiality| open_request(1, confidentiality);
        let refused = exchange(&mut responder, payload::OPEN_SESSION_REQUEST, &open(0));
        assert_eq!(refused[1], 0x12, "no confidentiality: not suite 3");
        let opened = exchange(&mut responder, payload::OPEN_SESSION_REQUEST, &open(1));
        let bmc_id = u32::from_le_bytes(opened[8..12].try_into().unwrap());
        let rakp2 = exchange(
            &mut responder,
            payload::RAKP_1,
            &rakp_1(bmc_id, [0; 16], 0x04, b"root"),
        );
        assert_eq!(rakp2[1], 0x0D, "unauthorized name");
        assert!(responder.sessions.is_empty());
    }
}
