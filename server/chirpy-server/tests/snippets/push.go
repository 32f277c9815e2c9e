// Go
http.Post(
"http://chirpy.internal:7000/queues/email/jobs",
"application/json",
strings.NewReader(`{"payload":{"to":"user@example.com"}}`),
)
