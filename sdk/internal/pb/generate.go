// Package pb is the generated gRPC code of the connector protocol. Do not
// edit the .pb.go files; change connector.proto and run go generate.
package pb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative connector.proto
