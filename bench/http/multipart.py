"""Writes a multipart/form-data body with the given files: multipart.py OUT BOUNDARY name=path..."""

import sys

out, boundary, *fields = sys.argv[1:]
with open(out, "wb") as body:
    for field in fields:
        name, path = field.split("=", 1)
        body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{path.rsplit("/", 1)[-1]}"\r\n'
                   f"Content-Type: application/octet-stream\r\n\r\n".encode())
        with open(path, "rb") as data:
            body.write(data.read())
        body.write(b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
