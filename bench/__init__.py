"""The djhpc vs DataJoint populate benchmark: ``python -m bench --help``; see bench/README.md."""
