"""The tests of DataJoint's suite that are not run here, each with its reason: they need a service or program that
this machine (and CI) does not have, or they cannot start on a MariaDB server. Keys are pytest node ids under the
suite's tests/ folder; a key naming a whole file leaves the file out of collection.

Everything else in the suite is selected, whatever DataJoint 0.14.10 itself does with it.
"""

MINIO = "needs an S3 (MinIO) server at minio:9000: its fixtures connect to one"

DESELECTED = {
    "test_s3.py": MINIO,
    "test_adapted_attributes.py::test_adapted_filepath_type": MINIO,
    "test_attach.py::test_attach_attributes": MINIO,
    "test_attach.py::test_return_string": MINIO,
    "test_external.py::TestLeadingSlash::test_s3_leading_slash": MINIO,
    "test_external.py::TestLeadingSlash::test_file_leading_slash": MINIO,
    "test_external.py::test_remove_fail": MINIO,
    "test_filepath.py::test_path_match": MINIO,
    "test_filepath.py::test_filepath[repo-s3]": MINIO,
    "test_filepath.py::test_duplicate_upload[repo-s3]": MINIO,
    "test_filepath.py::test_duplicate_error[repo-s3]": MINIO,
    "test_filepath.py::test_filepath_cleanup[table1-repo-s3]": MINIO,
    "test_filepath.py::TestFilepath::test_filepath_class[table0-repo-2]": MINIO,
    "test_filepath.py::TestFilepath::test_filepath_class[table1-repo-s3-2]": MINIO,
    "test_tls.py::test_secure_connection": "needs a server with TLS; the MariaDB here has none",
    "test_json.py": "MySQL 8 only: the module reads @@version with packaging at import, which rejects MariaDB's "
    "version string, so the file cannot even be collected here",
    "test_erd.py::test_repr_svg": "needs Graphviz's dot program, not installed here",
    "test_erd.py::test_make_image": "needs Graphviz's dot program, not installed here",
}
