module github.com/ddbtrack/ddbtrack/dashboard

go 1.25.0

require (
	github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression v1.10.9
	github.com/aws/aws-sdk-go-v2/service/dynamodb v1.74.0
	github.com/aws/smithy-go v1.28.9
	github.com/chromedp/cdproto v0.159.0
	github.com/chromedp/chromedp v0.23.0
	github.com/ddbtrack/ddbtrack v0.1.0
	github.com/stretchr/testify v1.12.1
)
