"""S3 as the team's state backend reads it: GetBucketVersioning of a bucket
that never had versioning answers an empty `VersioningConfiguration`, as
AWS does. Plain moto 5.2.5 answers an empty `GetBucketVersioningResponse`,
whose root the Rust SDK refuses to parse (boto3 does not mind). Its
conditional writes (If-None-Match, If-Match on PutObject and DeleteObject,
412 PreconditionFailed) are moto's own."""

from moto.s3.responses import S3Response

EMPTY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>'
)


def install() -> None:
    get = S3Response.get_bucket_versioning

    def get_bucket_versioning(self):
        if self.backend.get_bucket_versioning(self.bucket_name) is None:
            return 200, {"Content-Type": "application/xml"}, EMPTY
        return get(self)

    S3Response.get_bucket_versioning = get_bucket_versioning
