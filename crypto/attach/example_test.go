package attach_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/medicus-health/medicus/crypto/attach"
)

func Example() {
	ctx := context.Background()
	// The sender encrypts while uploading; the blob goes to the media store,
	// sealed.Params and sealed.SHA256 go into the MLS-encrypted message.
	var blob bytes.Buffer
	sealed, err := attach.Encrypt(ctx, &blob, strings.NewReader("CT thorax, 2026-11-28: no embolism."))
	if err != nil {
		panic(err)
	}
	fmt.Println(blob.Len() == int(attach.CiphertextSize(sealed.PlaintextSize)))

	// A receiver decrypts into a temporary file and keeps it only on success.
	var plain bytes.Buffer
	if _, err := attach.Decrypt(ctx, &plain, &blob, sealed.Params, sealed.SHA256); err != nil {
		fmt.Println("discard:", err)
		return
	}
	fmt.Println(plain.String())

	// A blob that is not the announced one is refused.
	tampered, _ := attach.Encrypt(ctx, &blob, strings.NewReader("something else"))
	_, err = attach.Decrypt(ctx, &plain, &blob, sealed.Params, tampered.SHA256)
	fmt.Println(err)
	// Output:
	// true
	// CT thorax, 2026-11-28: no embolism.
	// attach: attachment does not decrypt: chunk authentication failed
}
