// The Go code generators buf.gen.yaml runs, pinned with go.sum.
// scripts/setup installs them into .tools/bin with `go install tool`.
module github.com/apalis-dev/chirpy/tools

go 1.25.0

tool (
	google.golang.org/grpc/cmd/protoc-gen-go-grpc
	google.golang.org/protobuf/cmd/protoc-gen-go
)

require (
	google.golang.org/grpc/cmd/protoc-gen-go-grpc v1.6.2 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
