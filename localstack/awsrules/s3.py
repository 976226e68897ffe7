"""S3 as the team's state backend reads it: GetBucketVersioning answers a
`VersioningConfiguration` document, as AWS does: empty for a bucket that
never had versioning, else with its `Status`. Plain moto 5.2.5 answers
either with a `GetBucketVersioningResponse` root, which the Rust SDK
refuses to parse (boto3 does not mind). Its conditional writes
(If-None-Match, If-Match on PutObject and DeleteObject, 412
PreconditionFailed) are moto's own."""

from moto.s3.responses import S3Response

from xml.sax.saxutils import escape

HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"


def versioning_document(status):
    """AWS's answer: no Status at all for a bucket never versioned."""
    if status is None:
        return f'{HEAD}<VersioningConfiguration xmlns="{XMLNS}"/>'
    return (
        f'{HEAD}<VersioningConfiguration xmlns="{XMLNS}">'
        f"<Status>{escape(status)}</Status></VersioningConfiguration>"
    )


def install() -> None:
    def get_bucket_versioning(self):
        # Raises NoSuchBucket for a missing bucket, as moto's own does.
        status = self.backend.get_bucket_versioning(self.bucket_name)
        self.data["Action"] = "GetBucketVersioning"
        return 200, {"Content-Type": "application/xml"}, versioning_document(status)

    S3Response.get_bucket_versioning = get_bucket_versioning
