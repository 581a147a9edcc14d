module github.com/mlp-go/cifar-mlp

go 1.26
