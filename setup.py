"""ament_python package definition; also installs with ``pip install -e .`` into a plain venv."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'rapnet_loc'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'benchmarks']),
    package_data={PACKAGE: ['io/*.yaml']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', glob('launch/*.launch.py')),
        ('share/' + PACKAGE + '/config', glob('config/*.yaml')),
        ('share/' + PACKAGE + '/config/slam', glob('config/slam/*.yaml')),
        ('share/' + PACKAGE + '/rviz', glob('rviz/*.rviz')),
        ('share/' + PACKAGE + '/models', [p for p in glob('models/*') if not p.endswith('/')]),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='rapnet_loc developers',
    maintainer_email='dev@rapnet-loc.invalid',
    description='Visual localization suite: RaP-Net keypoints, Patch-NetVLAD, VS-Net landmarks, '
                'ORB-SLAM2-style RGB-D front end, OpenLORIS replay and evaluation.',
    license='MIT',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'rapnet-loc = rapnet_loc.cli.main:main',
            'feature_node = rapnet_loc.nodes.feature_node:main',
            'frontend_node = rapnet_loc.nodes.frontend_node:main',
            'vpr_node = rapnet_loc.nodes.vpr_node:main',
            'landmark_node = rapnet_loc.nodes.landmark_node:main',
        ],
    },
)
