"""djhpc: DataJoint-style tables and distributed populate for HPC clusters."""

__version__ = "0.1.0"
