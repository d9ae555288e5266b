module github.com/samplero/samplero/sdk/go

go 1.26
