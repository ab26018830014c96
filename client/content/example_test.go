package content_test

import (
	"fmt"

	"github.com/medicus-health/medicus/client/content"
)

func ExampleDecode() {
	// The sender.
	m := content.New(&content.Text{Markdown: "Lactate **4.2** mmol/L — please review."})
	b, err := content.Encode(m)
	if err != nil {
		panic(err)
	}
	// Each receiver, after MLS decryption.
	got, err := content.Decode(b)
	if err != nil {
		fmt.Println("refused:", err)
		return
	}
	switch body := got.Body.(type) {
	case *content.Text:
		fmt.Println(body.Markdown)
	case *content.FHIR:
		fmt.Println(body.Parsed().ResourceType)
	}
	_, err = content.Decode([]byte(`{"v":2,"id":"x"}`))
	fmt.Println(err)
	// Output:
	// Lactate **4.2** mmol/L — please review.
	// content: unsupported format version 2 (this client reads version 1; update it to read this message)
}
