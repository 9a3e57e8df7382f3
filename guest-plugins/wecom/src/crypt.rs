//! Decryption of the AI bot's media files. Rule, as WeCom documents it for the long connection ("智能机器人长连接",
//! developer.work.weixin.qq.com/document/path/101463, section 多媒体资源解密) and as WeCom's own `aibot-node-sdk`
//! implements it (`src/crypto.ts`, `decryptFile`); IronClaw's wecom channel (nearai/ironclaw,
//! `channels-src/wecom/src/lib.rs`, `decrypt_websocket_media_payload`) does the same:
//!
//! * every image/file item carries its own `aeskey`: the base64 text of a 32-byte AES-256 key (WeCom may drop the
//!   trailing `=`);
//! * the downloaded bytes are AES-256-CBC ciphertext with IV = the first 16 bytes of that key;
//! * the plaintext was padded PKCS#7-style to a multiple of **32** bytes (not AES's 16): the last byte `n` is
//!   1..=32 and the last `n` bytes all equal `n`.

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, KeyIvInit};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;

type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// AES-256: a 32-byte key.
pub const KEY_BYTES: usize = 32;
/// The IV is the key's first 16 bytes (one AES block).
pub const IV_BYTES: usize = 16;
/// WeCom pads to a multiple of 32 bytes, so a pad is 1..=32 bytes.
pub const PAD_BLOCK: usize = 32;
/// AES's block: a ciphertext is a whole number of them.
const AES_BLOCK: usize = 16;

/// Why a file could not be decrypted (no key material in the text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecryptError {
    /// The `aeskey` is not base64 of 32 bytes.
    BadKey,
    /// Empty, or not a whole number of AES blocks.
    BadLength,
    /// The decrypted bytes do not end with a valid 32-byte-block PKCS#7 pad (wrong key, or damaged data).
    BadPadding,
}

impl core::fmt::Display for DecryptError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DecryptError::BadKey => "the aeskey is not base64 of a 32-byte key",
            DecryptError::BadLength => "the data is empty or not a whole number of 16-byte blocks",
            DecryptError::BadPadding => "the decrypted data has no valid padding (wrong key or damaged file)",
        })
    }
}

/// The 32-byte key of an `aeskey` (base64, with or without its `=` padding).
pub fn key_of(aeskey: &str) -> Result<[u8; KEY_BYTES], DecryptError> {
    let text = aeskey.trim();
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text.trim_end_matches('=')))
        .map_err(|_| DecryptError::BadKey)?;
    bytes.try_into().map_err(|_| DecryptError::BadKey)
}

/// Decrypt `data` in place with `aeskey` and cut the pad: on success `data` holds the file's bytes. Decrypting in
/// place keeps one copy of a file in guest memory (the callback's memory limit bounds what fits).
pub fn decrypt_in_place(data: &mut Vec<u8>, aeskey: &str) -> Result<(), DecryptError> {
    let key = key_of(aeskey)?;
    if data.is_empty() || data.len() % AES_BLOCK != 0 {
        return Err(DecryptError::BadLength);
    }
    let iv = &key[..IV_BYTES];
    let plain_len = Aes256CbcDec::new_from_slices(&key, iv)
        .map_err(|_| DecryptError::BadKey)?
        .decrypt_padded_mut::<NoPadding>(data)
        .map_err(|_| DecryptError::BadLength)?
        .len();
    let pad = usize::from(data[plain_len - 1]);
    if pad == 0
        || pad > PAD_BLOCK
        || pad > plain_len
        || !data[plain_len - pad..plain_len].iter().all(|b| usize::from(*b) == pad)
    {
        return Err(DecryptError::BadPadding);
    }
    data.truncate(plain_len - pad);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // A vector made with Python's `cryptography` (AES-256-CBC, no padding mode, the 32-byte pad added by hand):
    //   key = bytes(range(32)); iv = key[:16]; plain = b"airlock wecom media test vector\n" * 3 + b"end"
    //   pad = 32 - len(plain) % 32; data = plain + bytes([pad]) * pad
    //   Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor().update(data).hex()
    const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const PLAIN: &[u8] =
        b"airlock wecom media test vector\nairlock wecom media test vector\nairlock wecom media test vector\nend";
    const CIPHER_HEX: &str = include_str!("crypt_vector.hex");

    fn unhex(text: &str) -> Vec<u8> {
        let text = text.trim();
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn decrypts_the_known_vector_with_or_without_the_key_padding() {
        for key in [KEY_B64, KEY_B64.trim_end_matches('=')] {
            let mut data = unhex(CIPHER_HEX);
            assert_eq!(data.len(), 128, "99 bytes padded to 4 blocks of 32");
            decrypt_in_place(&mut data, key).unwrap();
            assert_eq!(data, PLAIN);
        }
    }

    #[test]
    fn refuses_a_wrong_key_bad_lengths_and_bad_keys() {
        let other = STANDARD.encode([7u8; 32]);
        let mut data = unhex(CIPHER_HEX);
        assert_eq!(decrypt_in_place(&mut data, &other), Err(DecryptError::BadPadding));
        let mut data = unhex(CIPHER_HEX);
        data.pop();
        assert_eq!(decrypt_in_place(&mut data, KEY_B64), Err(DecryptError::BadLength));
        assert_eq!(decrypt_in_place(&mut Vec::new(), KEY_B64), Err(DecryptError::BadLength));
        let short = STANDARD.encode([1u8; 16]);
        assert_eq!(decrypt_in_place(&mut unhex(CIPHER_HEX), &short), Err(DecryptError::BadKey));
        assert_eq!(decrypt_in_place(&mut unhex(CIPHER_HEX), "not base64!"), Err(DecryptError::BadKey));
    }

    #[test]
    fn a_pad_over_32_or_inconsistent_is_refused() {
        // Build ciphertexts whose last plaintext block ends with a bad pad, by encrypting with the same rule.
        let key = key_of(KEY_B64).unwrap();
        for last in [[0u8; 32], [33u8; 32], {
            let mut b = [4u8; 32];
            b[29] = 9;
            b
        }] {
            let mut data = encrypt_blocks(&key, &last);
            assert_eq!(decrypt_in_place(&mut data, KEY_B64), Err(DecryptError::BadPadding), "{last:?}");
        }
    }

    /// CBC encryption of whole blocks (test only: the channel never encrypts).
    fn encrypt_blocks(key: &[u8; 32], plain: &[u8]) -> Vec<u8> {
        use aes::cipher::BlockEncryptMut;
        let mut data = plain.to_vec();
        let len = data.len();
        cbc::Encryptor::<aes::Aes256>::new_from_slices(key, &key[..16])
            .unwrap()
            .encrypt_padded_mut::<NoPadding>(&mut data, len)
            .unwrap();
        data
    }
}
