// Package mlsclientpb holds the protocol buffer and gRPC types of the MLS
// interoperability test protocol (service mls_client.MLSClient), generated
// from interop.proto. The generated files are committed, so building needs
// no protoc; regenerate after editing interop.proto with
//
//	go generate ./mlsinterop/mlsclientpb
//
// which needs protoc, protoc-gen-go and protoc-gen-go-grpc on PATH.
package mlsclientpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative interop.proto
