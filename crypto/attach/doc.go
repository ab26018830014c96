// Package attach encrypts attachments (files, images, DICOM studies) for
// upload as opaque blobs: every file gets a fresh random AES-256 key and is
// sealed with AES-256-GCM in 64 KiB chunks, streaming from an io.Reader to
// an io.Writer in constant memory, with the SHA-256 of the ciphertext
// computed on the way. The key, the nonce prefix and the hash travel to the
// room's members inside an MLS-encrypted content message
// (client/content.Attachment); the homeserver only stores the ciphertext.
//
// The format ("aes256gcm-chunked-v1", docs/content.md) follows the STREAM
// construction of Hoang, Reyhanitabar, Rogaway and Vizár ("Online
// Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", 2015), as
// age does: chunk i is sealed under the nonce prefix ‖ i (64-bit big
// endian), and the last chunk's additional data differs from every other
// chunk's, so reordering, dropping and truncation are all detected.
package attach
