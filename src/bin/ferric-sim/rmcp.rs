//! IPMI over LAN as a BMC speaks it: RMCP framing, ASF presence pong, the
//! IPMI 1.5 session header (unauthenticated, for the commands sent before a
//! session), the RMCP+ (IPMI 2.0) session header with its integrity trailer
//! (HMAC-SHA1-96) and AES-CBC-128 confidentiality — cipher suite 3 — and the
//! RAKP key exchange's codes (HMAC-SHA1 over what IPMI 2.0 §13.31–13.32
//! list), using RustCrypto's `hmac`, `sha1`, `aes` and `cbc`.
//!
//! Invariants: pure (no sockets, no clock; randomness is passed in);
//! a packet whose integrity code or padding does not check out is `None`,
//! never a partial payload.

use aes::cipher::{
    BlockDecryptMut as _, BlockEncryptMut as _, KeyIvInit as _, block_padding::NoPadding,
};
use hmac::{Hmac, Mac as _};

type HmacSha1 = Hmac<sha1::Sha1>;
type Encryptor = cbc::Encryptor<aes::Aes128>;
type Decryptor = cbc::Decryptor<aes::Aes128>;

/// RMCP's header for IPMI (version 6, no ACK, class IPMI).
const RMCP_IPMI: [u8; 4] = [0x06, 0x00, 0xFF, 0x07];
/// ASF's IANA enterprise number.
const ASF_IANA: [u8; 4] = [0x00, 0x00, 0x11, 0xBE];
/// Bytes of the HMAC-SHA1-96 integrity code.
pub const AUTH_CODE_LEN: usize = 12;

/// RMCP+ payload types.
pub mod payload {
    pub const IPMI: u8 = 0x00;
    pub const OPEN_SESSION_REQUEST: u8 = 0x10;
    pub const OPEN_SESSION_RESPONSE: u8 = 0x11;
    pub const RAKP_1: u8 = 0x12;
    pub const RAKP_2: u8 = 0x13;
    pub const RAKP_3: u8 = 0x14;
    pub const RAKP_4: u8 = 0x15;
}

/// HMAC-SHA1 of the concatenated `parts` under `key`.
pub fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    // HMAC takes keys of any length: this never fails.
    let Ok(mut mac) = <HmacSha1 as hmac::digest::KeyInit>::new_from_slice(key) else {
        return [0; 20];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// A received packet, as far as framing goes.
#[derive(Debug, PartialEq)]
pub enum Packet<'a> {
    /// An ASF presence ping with its message tag.
    Ping { tag: u8 },
    /// An IPMI 1.5 message outside any session (authentication type none).
    V15 { payload: &'a [u8] },
    /// An RMCP+ message.
    V20(V20<'a>),
}

/// An RMCP+ message, its integrity code not yet checked.
#[derive(Debug, PartialEq)]
pub struct V20<'a> {
    pub payload_type: u8,
    pub encrypted: bool,
    pub authenticated: bool,
    pub session_id: u32,
    pub sequence: u32,
    pub payload: &'a [u8],
    /// From the authentication type through the next header: what the
    /// integrity code covers.
    pub covered: &'a [u8],
    pub auth_code: &'a [u8],
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Reads a datagram; `None` for anything that is not one of the above.
pub fn parse(datagram: &[u8]) -> Option<Packet<'_>> {
    let header = datagram.get(..4)?;
    if header[0] != 0x06 {
        return None;
    }
    if header[3] == 0x06 {
        // ASF: IANA, type 0x80 (ping), tag.
        let asf = datagram.get(4..12)?;
        return (asf[..4] == ASF_IANA && asf[4] == 0x80).then_some(Packet::Ping { tag: asf[5] });
    }
    if header[3] != 0x07 {
        return None;
    }
    match *datagram.get(4)? {
        0x00 => {
            let length = usize::from(*datagram.get(13)?);
            Some(Packet::V15 {
                payload: datagram.get(14..14 + length)?,
            })
        }
        0x06 => {
            let kind = *datagram.get(5)?;
            let length = usize::from(u16::from_le_bytes(datagram.get(14..16)?.try_into().ok()?));
            let payload = datagram.get(16..16 + length)?;
            let authenticated = kind & 0x40 != 0;
            let (covered, auth_code) = if authenticated {
                let split = datagram.len().checked_sub(AUTH_CODE_LEN)?;
                (datagram.get(4..split)?, datagram.get(split..)?)
            } else {
                (datagram.get(4..16 + length)?, &[][..])
            };
            Some(Packet::V20(V20 {
                payload_type: kind & 0x3F,
                encrypted: kind & 0x80 != 0,
                authenticated,
                session_id: u32_at(datagram, 6)?,
                sequence: u32_at(datagram, 10)?,
                payload,
                covered,
                auth_code,
            }))
        }
        _ => None,
    }
}

/// The ASF pong to a ping: IPMI supported.
pub fn pong(tag: u8) -> Vec<u8> {
    let mut out = vec![0x06, 0x00, 0xFF, 0x06];
    out.extend_from_slice(&ASF_IANA);
    out.extend_from_slice(&[0x40, tag, 0x00, 0x10]);
    out.extend_from_slice(&ASF_IANA);
    out.extend_from_slice(&[0, 0, 0, 0]); // OEM
    out.extend_from_slice(&[0x81, 0x00]); // IPMI supported; interactions
    out.extend_from_slice(&[0; 6]);
    out
}

/// An IPMI 1.5 packet outside a session carrying `message`.
pub fn v15(message: &[u8]) -> Vec<u8> {
    let mut out = RMCP_IPMI.to_vec();
    out.push(0x00); // authentication type none
    out.extend_from_slice(&[0; 8]); // sequence, session id
    out.push(u8::try_from(message.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(message);
    out
}

/// A session's keys: `k1` signs, the first 16 bytes of `k2` encrypt.
#[derive(Clone)]
pub struct Keys {
    pub k1: [u8; 20],
    pub aes: [u8; 16],
}

impl Keys {
    pub fn from_sik(sik: &[u8; 20]) -> Keys {
        let k2 = hmac_sha1(sik, &[&[0x02; 20]]);
        let mut aes = [0; 16];
        aes.copy_from_slice(&k2[..16]);
        Keys {
            k1: hmac_sha1(sik, &[&[0x01; 20]]),
            aes,
        }
    }
}

/// Checks an authenticated message's integrity code.
pub fn verify(keys: &Keys, message: &V20<'_>) -> bool {
    let code = hmac_sha1(&keys.k1, &[message.covered]);
    message.auth_code.len() == AUTH_CODE_LEN && code[..AUTH_CODE_LEN] == *message.auth_code
}

/// Decrypts an AES-CBC-128 payload (IV, then blocks ending in the
/// confidentiality trailer); `None` when it does not decrypt cleanly.
pub fn decrypt(keys: &Keys, payload: &[u8]) -> Option<Vec<u8>> {
    if payload.len() < 32 || !payload.len().is_multiple_of(16) {
        return None;
    }
    let (iv, blocks) = payload.split_at(16);
    let mut buffer = blocks.to_vec();
    let plain = Decryptor::new(&keys.aes.into(), iv.into())
        .decrypt_padded_mut::<NoPadding>(&mut buffer)
        .ok()?;
    let pad = usize::from(*plain.last()?);
    let end = plain.len().checked_sub(pad + 1)?;
    // The pad bytes count 1, 2, 3 …
    let counted = plain[end..plain.len() - 1]
        .iter()
        .enumerate()
        .all(|(i, b)| usize::from(*b) == i + 1);
    counted.then(|| plain[..end].to_vec())
}

/// Encrypts `plain` with a fresh `iv`: the payload to send.
pub fn encrypt(keys: &Keys, iv: [u8; 16], plain: &[u8]) -> Vec<u8> {
    let pad = (16 - (plain.len() + 1) % 16) % 16;
    let mut buffer = plain.to_vec();
    buffer.extend((1..=pad).map(|n| u8::try_from(n).unwrap_or(0)));
    buffer.push(u8::try_from(pad).unwrap_or(0));
    let length = buffer.len();
    let mut out = iv.to_vec();
    if let Ok(cipher) = Encryptor::new(&keys.aes.into(), &iv.into())
        .encrypt_padded_mut::<NoPadding>(&mut buffer, length)
    {
        out.extend_from_slice(cipher);
    }
    out
}

/// An RMCP+ packet: `payload` (already encrypted when `encrypted`), and
/// when `keys` are given the integrity trailer signed with them.
pub fn v20(
    payload_type: u8,
    session_id: u32,
    sequence: u32,
    payload: &[u8],
    encrypted: bool,
    keys: Option<&Keys>,
) -> Vec<u8> {
    let mut out = RMCP_IPMI.to_vec();
    out.push(0x06);
    let mut kind = payload_type;
    if encrypted {
        kind |= 0x80;
    }
    if keys.is_some() {
        kind |= 0x40;
    }
    out.push(kind);
    out.extend_from_slice(&session_id.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(
        &u16::try_from(payload.len())
            .unwrap_or(u16::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(payload);
    if let Some(keys) = keys {
        // Pad so that the signed range (authentication type through next
        // header) is a whole number of 4-byte words.
        let signed = out.len() - 4 + 2;
        let pad = (4 - signed % 4) % 4;
        out.extend(std::iter::repeat_n(0xFF, pad));
        out.push(u8::try_from(pad).unwrap_or(0));
        out.push(0x07);
        let code = hmac_sha1(&keys.k1, &[&out[4..]]);
        out.extend_from_slice(&code[..AUTH_CODE_LEN]);
    }
    out
}

/// The two's-complement checksum IPMB messages carry.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |sum, b| sum.wrapping_add(*b))
        .wrapping_neg()
}

/// An IPMI request inside a payload.
#[derive(Debug, PartialEq)]
pub struct Request<'a> {
    pub requester: u8,
    pub net_fn: u8,
    pub sequence_lun: u8,
    pub command: u8,
    pub data: &'a [u8],
}

/// Reads an IPMB-framed request; `None` when its checksums fail.
pub fn request(message: &[u8]) -> Option<Request<'_>> {
    if message.len() < 7 || checksum(&message[..3]) != 0 || checksum(&message[3..]) != 0 {
        return None;
    }
    Some(Request {
        requester: message[3],
        net_fn: message[1] >> 2,
        sequence_lun: message[4],
        command: message[5],
        data: &message[6..message.len() - 1],
    })
}

/// The response to `request` with completion code `code` and `data`.
pub fn response(request: &Request<'_>, code: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![request.requester, (request.net_fn | 1) << 2];
    out.push(checksum(&out));
    let start = out.len();
    out.extend_from_slice(&[0x20, request.sequence_lun, request.command, code]);
    out.extend_from_slice(data);
    let sum = checksum(&out[start..]);
    out.push(sum);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::from_sik(&[7; 20])
    }

    #[test]
    fn a_signed_encrypted_packet_reads_back_and_a_flipped_bit_does_not() {
        let keys = keys();
        let plain = b"chassis status, please";
        let payload = encrypt(&keys, [9; 16], plain);
        assert_eq!(payload.len() % 16, 0);
        let packet = v20(payload::IPMI, 0x1234, 5, &payload, true, Some(&keys));
        let Some(Packet::V20(message)) = parse(&packet) else {
            panic!("not RMCP+");
        };
        assert!(message.encrypted && message.authenticated);
        assert_eq!((message.session_id, message.sequence), (0x1234, 5));
        assert!(verify(&keys, &message));
        assert_eq!(decrypt(&keys, message.payload).unwrap(), plain);
        assert_eq!(message.covered.len() % 4, 0);
        let mut tampered = packet.clone();
        tampered[20] ^= 1;
        let Some(Packet::V20(message)) = parse(&tampered) else {
            panic!("not RMCP+");
        };
        assert!(!verify(&keys, &message));
    }

    #[test]
    fn every_plaintext_length_pads_to_whole_blocks() {
        let keys = keys();
        for n in 0..40 {
            let plain: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let payload = encrypt(&keys, [3; 16], &plain);
            assert_eq!(decrypt(&keys, &payload).unwrap(), plain, "{n}");
        }
        assert!(decrypt(&keys, &[0; 20]).is_none());
    }

    #[test]
    fn requests_and_responses_carry_ipmb_checksums() {
        // Get Chassis Status from ipmitool: rsSA 0x20, NetFn chassis.
        let mut message = vec![0x20, 0x00 << 2];
        message.push(checksum(&message));
        message.extend_from_slice(&[0x81, 0x04, 0x01]);
        message.push(checksum(&message[3..]));
        let request = request(&message).unwrap();
        assert_eq!((request.net_fn, request.command), (0, 1));
        let answer = response(&request, 0, &[0x01, 0, 0]);
        assert_eq!(checksum(&answer[..3]), 0);
        assert_eq!(checksum(&answer[3..]), 0);
        assert_eq!(answer[1], 0x04, "NetFn chassis response");
        message[6] ^= 0xFF;
        assert!(super::request(&message).is_none());
    }

    #[test]
    fn pings_are_answered_and_garbage_is_not_a_packet() {
        let ping = [
            0x06, 0x00, 0xFF, 0x06, 0x00, 0x00, 0x11, 0xBE, 0x80, 0x2A, 0x00, 0x00,
        ];
        assert_eq!(parse(&ping), Some(Packet::Ping { tag: 0x2A }));
        assert_eq!(pong(0x2A)[9], 0x2A);
        assert_eq!(parse(&[0x06, 0x00]), None);
        assert_eq!(parse(&[0x06, 0x00, 0xFF, 0x07, 0x06, 0x00, 1, 2]), None);
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), None);
    }
}
