"""The Qt face of Semdex: windows and widgets over the Qt-free core in ``desktop``."""
