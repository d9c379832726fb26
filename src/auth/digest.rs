//! The messages of the handshake, without I/O: which digest a challenge or an answer names, the
//! answer to a challenge, and the check of an answer (in constant time).
//!
//! A challenge is `{name}` followed by random bytes (Python 3.12+), or 20 random bytes with no
//! prefix (3.11 and earlier). An answer is `{name}` followed by the HMAC of the whole challenge
//! (its prefix included) keyed by the authkey, or a bare 16-byte HMAC-MD5 (the legacy form).

use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

/// A message with no prefix is legacy if it has one of these lengths: a 3.11 challenge (20
/// random bytes) or a legacy answer (an HMAC-MD5, 16 bytes).
pub const LEGACY_LENGTHS: [usize; 2] = [20, 16];
/// The longest digest name in a prefix (`sha3_256`, `sha3_384`).
const MAX_NAME: usize = 8;

/// A digest the standard library accepts in a `{name}` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    /// `md5`, also the digest of the legacy (unprefixed) forms.
    Md5,
    /// `sha256`: what fastipc and Python 3.12+ challenge with.
    Sha256,
    /// `sha384`.
    Sha384,
    /// `sha3_256`.
    Sha3_256,
    /// `sha3_384`.
    Sha3_384,
}

/// Why a handshake message was refused (the text of the `AuthenticationError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Neither a legacy length nor a known `{name}` prefix.
    NoDigest(usize),
    /// The answer's MAC is not the expected one.
    WrongAnswer,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NoDigest(len) => write!(
                f,
                "unsupported handshake message ({len} bytes): no known digest prefix"
            ),
            Refused::WrongAnswer => f.write_str("the peer's answer to the challenge was wrong"),
        }
    }
}

impl Digest {
    /// Every digest, in the order of Python's list.
    pub const ALL: [Digest; 5] = [
        Digest::Md5,
        Digest::Sha256,
        Digest::Sha384,
        Digest::Sha3_256,
        Digest::Sha3_384,
    ];

    /// The name in a prefix, as `hashlib` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Digest::Md5 => "md5",
            Digest::Sha256 => "sha256",
            Digest::Sha384 => "sha384",
            Digest::Sha3_256 => "sha3_256",
            Digest::Sha3_384 => "sha3_384",
        }
    }

    fn from_name(name: &[u8]) -> Option<Digest> {
        Digest::ALL
            .into_iter()
            .find(|d| d.name().as_bytes() == name)
    }

    /// The HMAC of `message` keyed by `key`.
    pub fn mac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
            // HMAC takes keys of any length (a long one is hashed first): this cannot fail.
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Digest::Md5 => run::<Hmac<md5::Md5>>(key, message),
            Digest::Sha256 => run::<Hmac<sha2::Sha256>>(key, message),
            Digest::Sha384 => run::<Hmac<sha2::Sha384>>(key, message),
            Digest::Sha3_256 => run::<Hmac<sha3::Sha3_256>>(key, message),
            Digest::Sha3_384 => run::<Hmac<sha3::Sha3_384>>(key, message),
        }
    }
}

/// The digest a challenge or an answer names (`None`: the legacy HMAC-MD5 form) and what
/// follows its prefix.
pub fn parse(message: &[u8]) -> Result<(Option<Digest>, &[u8]), Refused> {
    if LEGACY_LENGTHS.contains(&message.len()) {
        return Ok((None, message));
    }
    if message.first() == Some(&b'{') {
        // The closing brace within the first MAX_NAME + 2 bytes, as Python's `find` looks.
        let window = &message[..message.len().min(MAX_NAME + 2)];
        if let Some(curly) = window.iter().skip(1).position(|&b| b == b'}') {
            let curly = curly + 1;
            if let Some(digest) = Digest::from_name(&message[1..curly]) {
                return Ok((Some(digest), &message[curly + 1..]));
            }
        }
    }
    Err(Refused::NoDigest(message.len()))
}

/// A challenge in the modern form: `{name}` followed by `random`.
pub fn challenge(digest: Digest, random: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(digest.name().len() + 2 + random.len());
    out.push(b'{');
    out.extend_from_slice(digest.name().as_bytes());
    out.push(b'}');
    out.extend_from_slice(random);
    out
}

/// The answer to `challenge`: a bare HMAC-MD5 to a legacy one, `{name}` and the HMAC of the
/// whole challenge to a modern one (as Python 3.12+ answers).
pub fn response(key: &[u8], challenge: &[u8]) -> Result<Vec<u8>, Refused> {
    match parse(challenge)? {
        (None, _) => Ok(Digest::Md5.mac(key, challenge)),
        (Some(digest), _) => {
            let mut out = self::challenge(digest, &[]);
            out.extend(digest.mac(key, challenge));
            Ok(out)
        }
    }
}

/// Checks the peer's `answer` to our `challenge`: any digest of the list, or the legacy
/// HMAC-MD5. The MACs are compared in constant time.
pub fn verify(key: &[u8], challenge: &[u8], answer: &[u8]) -> Result<(), Refused> {
    let (digest, mac) = parse(answer)?;
    let expected = digest.unwrap_or(Digest::Md5).mac(key, challenge);
    if expected.len() == mac.len() && bool::from(expected.as_slice().ct_eq(mac)) {
        Ok(())
    } else {
        Err(Refused::WrongAnswer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"fastipc-key";

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn modern(digest: Digest) -> Vec<u8> {
        challenge(digest, &(0..40).collect::<Vec<u8>>())
    }

    /// HMACs of `{name}` + bytes(range(40)) keyed by b"fastipc-key", from Python's `hmac`.
    const VECTORS: [(Digest, &str); 5] = [
        (Digest::Md5, "321d27167cddf3dbf098f455d79a1b62"),
        (
            Digest::Sha256,
            "6bd30bfdd1902260dd81aa0c8400658bf93fd9786b1001c26bfe0a6b6446e962",
        ),
        (
            Digest::Sha384,
            "35f6fbc826c2fe15cfcf23c4bf2fb4effed0a34ce36ce59430fbba05a2fff79b\
             53bf815311e8d5911b610c6630df7d49",
        ),
        (
            Digest::Sha3_256,
            "342967884455d6eb00beb89788169aea892589974adfc469cd1687a90ae6c8f0",
        ),
        (
            Digest::Sha3_384,
            "f8a25f1af0c865e953bf5f47a1eb68cb750631bba6049fab0f1fa3a0a9a5e572\
             e9ce08cfef8b01902d9527ab68d0b299",
        ),
    ];

    #[test]
    fn answers_are_pythons_hmacs() {
        for (digest, mac) in VECTORS {
            let challenge = modern(digest);
            let mut expected = format!("{{{}}}", digest.name()).into_bytes();
            expected.extend(hex(mac));
            assert_eq!(response(KEY, &challenge), Ok(expected), "{digest:?}");
        }
        let legacy: Vec<u8> = (0..20).collect();
        assert_eq!(
            response(KEY, &legacy),
            Ok(hex("bc8ab3f175c21d2946618fd4f366861c"))
        );
    }

    #[test]
    fn every_form_of_answer_is_verified() {
        for digest in Digest::ALL {
            let challenge = modern(Digest::Sha256);
            let mut answer = self::challenge(digest, &[]);
            answer.extend(digest.mac(KEY, &challenge));
            assert_eq!(verify(KEY, &challenge, &answer), Ok(()), "{digest:?}");
            assert_eq!(
                verify(b"other", &challenge, &answer),
                Err(Refused::WrongAnswer)
            );
        }
        // The legacy answer of 3.11 to a modern challenge, and to a legacy one.
        let challenge = modern(Digest::Sha256);
        assert_eq!(
            verify(KEY, &challenge, &Digest::Md5.mac(KEY, &challenge)),
            Ok(())
        );
        let legacy: Vec<u8> = (100..120).collect();
        assert_eq!(
            verify(KEY, &legacy, &response(KEY, &legacy).unwrap()),
            Ok(())
        );
    }

    #[test]
    fn malformed_answers_are_refused() {
        let challenge = modern(Digest::Sha256);
        let right = response(KEY, &challenge).expect("answer");
        // Cut short, one bit flipped, a MAC of another length, an unknown digest.
        assert_eq!(
            verify(KEY, &challenge, &right[..right.len() - 1]),
            Err(Refused::WrongAnswer)
        );
        let mut flipped = right.clone();
        *flipped.last_mut().expect("not empty") ^= 1;
        assert_eq!(verify(KEY, &challenge, &flipped), Err(Refused::WrongAnswer));
        assert_eq!(
            verify(KEY, &challenge, b"{sha256}short"),
            Err(Refused::WrongAnswer)
        );
        let mut sha1 = b"{sha1}".to_vec();
        sha1.extend([0; 20]);
        assert_eq!(verify(KEY, &challenge, &sha1), Err(Refused::NoDigest(26)));
        assert_eq!(verify(KEY, &challenge, b""), Err(Refused::NoDigest(0)));
        assert_eq!(
            verify(KEY, &challenge, &[0u8; 32]),
            Err(Refused::NoDigest(32))
        );
        assert_eq!(
            Refused::NoDigest(3).to_string(),
            "unsupported handshake message (3 bytes): no known digest prefix"
        );
    }

    #[test]
    fn prefixes_are_found_where_python_looks() {
        assert_eq!(parse(b"{md5}x"), Ok((Some(Digest::Md5), &b"x"[..])));
        assert_eq!(parse(b"{sha3_384}"), Ok((Some(Digest::Sha3_384), &b""[..])));
        // A brace past the 10th byte is not looked for; `{}` names nothing.
        assert_eq!(parse(b"{sha3_3844}"), Err(Refused::NoDigest(11)));
        assert_eq!(parse(b"{}abc"), Err(Refused::NoDigest(5)));
        assert_eq!(parse(b"sha256}abc"), Err(Refused::NoDigest(10)));
        // A legacy length wins over a prefix, as in Python.
        let sixteen = b"{sha256}01234567";
        assert_eq!(parse(sixteen), Ok((None, &sixteen[..])));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        #[test]
        fn any_message_parses_or_is_refused_without_panic(
            message in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            key in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..100),
        ) {
            let answer = response(&key, &message);
            if let Ok(answer) = answer {
                proptest::prop_assert_eq!(verify(&key, &message, &answer), Ok(()));
            }
            let _ = verify(&key, &message, &message);
        }
    }
}
