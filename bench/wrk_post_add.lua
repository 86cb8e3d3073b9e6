-- wrk: POST /v1/jobs with one trivial add job (the no-op baseline gets the same request)
wrk.method = "POST"
wrk.path = "/v1/jobs"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"type":"add","payload":{"a":1,"b":2}}'
