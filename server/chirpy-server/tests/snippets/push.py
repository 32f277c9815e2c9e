# Python
import httpx
httpx.post("http://chirpy.internal:7000/queues/email/jobs", json={
"payload": {"to": "user@example.com", "subject": "Welcome"},
})
